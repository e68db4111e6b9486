"""The repository stands on its own: no tracked file refers to a path outside it, every
link and section a document names exists, and documented defaults match the code.

A clone is all a newcomer has. A link to a design folder next to the checkout, a
section number of a specification that is not in the repository, or a section title
that was renamed all look fine to the person who wrote them and lead nowhere for
everyone else.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

from clf_analysis.config import DEFAULT_CORS_ORIGINS

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()

# Written in pieces so that this file does not match itself.
OUTSIDE = {
    "a path next to the checkout": re.compile(r"\.\./" + r"shared\b"),
    "the design or spec folder of the workspace": re.compile(r"\bshared/" + r"(?:spec|design)/"),
    "an absolute path of the workspace": re.compile(r"(?<![\w.])/" + r"work/"),
    "a section number of a spec that is not here": re.compile("\u00a7" + r"\s*\d"),
}
MD_NAME = re.compile(r"(?<![\w/.-])((?:\.{1,2}/)?(?:[\w.-]+/)*[\w.-]+\.md)(#[\w-]+)?")
MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
QUOTED_SECTION = re.compile(r"([\w./-]+\.md)[,:]? \"([^\"]+)\"")
SEE_SECTION = re.compile(r"\bsee \"([^\"]+)\"(?! in)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


@cache
def tracked() -> tuple[Path, ...]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    return tuple(ROOT / name for name in out.decode().split("\0") if name)


def text_of(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def texts() -> list[tuple[Path, str]]:
    found = []
    for path in tracked():
        if path == THIS or not path.is_file():
            continue
        text = text_of(path)
        if text is not None:
            found.append((path, text))
    return found


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces → '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def headings(path: Path) -> tuple[tuple[str, ...], frozenset[str]]:
    """(heading texts, anchors) of a Markdown file; code blocks are not headings."""
    titles: list[str] = []
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match is None:
            continue
        title = match.group(2)
        titles.append(title.replace("`", ""))
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        anchors.add(base if n == 0 else f"{base}-{n}")
    return tuple(titles), frozenset(anchors)


def resolve_md(name: str, source: Path) -> Path | None:
    """The tracked Markdown file a mention of `name` in `source` means, or None."""
    files = {p for p in tracked() if p.suffix == ".md"}
    for candidate in ((source.parent / name).resolve(), (ROOT / name).resolve()):
        if candidate in files:
            return candidate
    if "/" not in name:  # a bare name ("OUTPUTS.md") for the one file of that name
        same = [p for p in files if p.name == name]
        if len(same) == 1:
            return same[0]
    return None


def test_no_tracked_file_refers_to_a_path_outside_the_repository() -> None:
    hits = [
        f"{rel(path)}:{number}: {what}: {line.strip()[:120]}"
        for path, text in texts()
        for number, line in enumerate(text.splitlines(), 1)
        for what, pattern in OUTSIDE.items()
        if pattern.search(line)
    ]
    assert not hits, "\n".join(hits)


def test_every_markdown_link_stays_in_the_repository_and_resolves() -> None:
    everything = set(tracked())
    problems = []
    for path, text in texts():
        if path.suffix != ".md":
            continue
        for target in MD_LINK.findall(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            name, _, anchor = target.partition("#")
            linked = (path.parent / name).resolve() if name else path
            if not linked.is_relative_to(ROOT):
                problems.append(f"{rel(path)}: {target} leaves the repository")
                continue
            in_repo = linked in everything or any(p.is_relative_to(linked) for p in everything)
            if not in_repo:
                problems.append(f"{rel(path)}: {target} is not a file of the repository")
            elif anchor and anchor not in headings(linked)[1]:
                problems.append(f"{rel(path)}: {target}: no heading with anchor #{anchor}")
    assert not problems, "\n".join(problems)


def test_every_markdown_file_and_section_a_file_names_exists() -> None:
    """`docs/FORMAT.md#errors` in a comment, `OUTPUTS.md` in a docstring,
    `docs/OPERATIONS.md, "Volumes and permissions"` in .env.example, `see "Scaling"`
    inside a document: each names a file, anchor or heading that is there."""
    problems = []
    for path, text in texts():
        for number, line in enumerate(text.splitlines(), 1):
            where = f"{rel(path)}:{number}"
            for name, anchor in MD_NAME.findall(line):
                found = resolve_md(name, path)
                if found is None:
                    problems.append(f"{where}: {name} is not a Markdown file of the repository")
                elif anchor and anchor[1:] not in headings(found)[1]:
                    problems.append(f"{where}: {name} has no heading with anchor {anchor}")
            for name, title in QUOTED_SECTION.findall(line):
                found = resolve_md(name, path)
                if found is not None and title not in headings(found)[0]:
                    problems.append(f'{where}: {name} has no section "{title}"')
            if path.suffix == ".md":
                for title in SEE_SECTION.findall(line):
                    if title not in headings(path)[0]:
                        problems.append(f'{where}: no section "{title}" in this file')
    assert not problems, "\n".join(problems)


def _origins(text: str) -> set[str]:
    return set(re.findall(r"https?://[\w.:-]+", text))


def test_documented_default_cors_origins_are_the_codes() -> None:
    """README, the operator's guide, the service guide and .env.example each state the
    default CORS origins; each statement lists exactly those of the code."""
    expected = set(DEFAULT_CORS_ORIGINS)
    readme = (ROOT / "README.md").read_text()
    operations = (ROOT / "docs" / "OPERATIONS.md").read_text()
    services = (ROOT / "ADDING_SERVICES.md").read_text()
    env = (ROOT / ".env.example").read_text()
    rows = {
        "README.md": next(ln for ln in readme.splitlines() if ln.startswith("| `CORS_ORIGINS`")),
        "docs/OPERATIONS.md": next(
            ln for ln in operations.splitlines() if ln.startswith("| `CORS_ORIGINS`")
        ),
        "ADDING_SERVICES.md": next(
            ln for ln in services.splitlines() if "`CORS_ORIGINS`, defaulting" in ln
        ),
        # The comment block right above the variable.
        ".env.example": env.split("\nCORS_ORIGINS=")[0].rsplit("\n\n", 1)[-1],
    }
    for name, row in rows.items():
        assert _origins(row) == expected, f"{name}: {row}"


def test_slugs_follow_the_github_rule() -> None:
    assert slug("The `.abp` build package") == "the-abp-build-package"
    assert slug("Threat model: the build share") == "threat-model-the-build-share"
    assert slug("5. Pitfalls") == "5-pitfalls"
    assert slug("`heights` — *new*: one entry") == "heights--new-one-entry"
