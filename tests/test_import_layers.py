"""The package's import graph, read from the source with `ast`: layers and no circles.

Every import counts, also those inside functions and under TYPE_CHECKING: a lazy import
is still a dependency, and it is how the one circle this test was written for
(jobs → cli → jobs) had hidden.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import clf_analysis

SRC = Path(clf_analysis.__file__).parent
ROOT = "clf_analysis"

# Lowest first: a package may import its own layer and those before it, never a later one.
LAYERS = ("clf", "abp", "geometry", "render", "pipeline", "jobs", "api", "cli")
# Top-level modules below every layer (they import none of them).
BOTTOM = ("clf_analysis", "config", "layout", "logs", "process_guard")
# Side packages outside the order: what each may import besides the bottom modules, and
# which packages may import it.
SIDE = {"synth": {"imports": {"clf", "abp"}, "imported_by": {"cli"}}}
ENTRY = ("__main__",)  # `python -m clf_analysis`: above everything


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(SRC.rglob("*.py*")):
        if path.suffix not in (".py", ".pyi"):
            continue
        parts = (ROOT, *path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.setdefault(".".join(parts), path)
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """The modules of this package that `module` imports, with the line of each import."""
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import name` imports the submodule when there is one.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        for name in names:
            while name not in MODULES and "." in name:
                name = name.rpartition(".")[0]
            if name in MODULES and name != module:
                yield name, node.lineno


GRAPH: dict[str, dict[str, int]] = {
    module: dict(_imports(module, path)) for module, path in MODULES.items() if path.suffix == ".py"
}


def _area(module: str) -> str:
    """The layer, side package or bottom module a module belongs to."""
    parts = module.split(".")
    return ROOT if len(parts) == 1 else parts[1]


def _allowed(importer: str, imported: str) -> bool:
    if importer == imported or imported in BOTTOM:
        return True
    if importer in ENTRY:
        return True
    if importer in BOTTOM or imported in ENTRY:
        return False
    if imported in SIDE:
        return importer in SIDE[imported]["imported_by"]
    if importer in SIDE:
        return imported in SIDE[importer]["imports"]
    return LAYERS.index(imported) < LAYERS.index(importer)


def test_every_area_of_the_package_has_a_place_in_the_order() -> None:
    areas = {_area(module) for module in MODULES}
    assert areas <= {*LAYERS, *BOTTOM, *SIDE, *ENTRY}, areas - {*LAYERS, *BOTTOM, *SIDE, *ENTRY}


def test_no_module_imports_a_higher_layer() -> None:
    upward = sorted(
        f"{MODULES[importer].relative_to(SRC)}:{line} imports {imported}"
        for importer, imports in GRAPH.items()
        for imported, line in imports.items()
        if not _allowed(_area(importer), _area(imported))
    )
    assert upward == []


def _cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in GRAPH.get(module, {}):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return sorted(groups)


def test_no_import_circle_between_modules() -> None:
    assert _cycles() == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from clf_analysis.cli.worker import configure_logging", "clf_analysis.cli.worker"),
        ("from clf_analysis.clf import open_clf", "clf_analysis.clf"),
        ("from clf_analysis.clf import reader", "clf_analysis.clf.reader"),
        ("from . import store", "clf_analysis.jobs.store"),
        ("from ..api import models", "clf_analysis.api.models"),
        ("import clf_analysis.pipeline.run as run", "clf_analysis.pipeline.run"),
    ],
)
def test_the_graph_reader_resolves_each_form_of_import(
    tmp_path: Path, source: str, expected: str
) -> None:
    path = tmp_path / "worker.py"
    path.write_text(f"def lazily():\n    {source}\n")
    assert [name for name, _ in _imports("clf_analysis.jobs.worker", path)] == [expected]
