"""`clf-analysis inspect FILE.clf [--json] [--layer N | --z Z]` and `inspect BUILD.abp`.

A CLF file: a human summary (header, models, layer range, warnings, and the shapes of a
selected layer), or with `--json` the canonical structure of `clf.canonical`. A build
package: its CLF files, each marked with the folder rule that excludes it from the
analysis (EXCLUSIONS_FILE, or --exclusions). Malformed input, a layer number or height
the file does not have: one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clf_analysis.clf import CLFFile, Layer

EXIT_BAD_INPUT = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="summarise a CLF file, or list the CLF files of a build package (.abp)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", metavar="FILE", help="a .clf layer file or an .abp package")
    parser.add_argument("--json", action="store_true", help="print the canonical JSON")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--layer", type=int, metavar="N", help="the N-th layer in z order")
    which.add_argument("--z", type=float, metavar="Z", help="the layer at height Z (mm)")
    parser.add_argument(
        "--exclusions",
        type=Path,
        default=None,
        metavar="FILE",
        help="folder exclusions JSON for a package (default: EXCLUSIONS_FILE or the built-in list)",
    )
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"clf-analysis inspect: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _emit_json(value: Any) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(value).decode() + "\n")


def run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.suffix.lower() == ".abp":
        chosen = "--layer" if args.layer is not None else "--z" if args.z is not None else None
        if chosen is not None:
            return _fail(
                f"{chosen} selects a layer of a .clf file; a package lists its CLF files "
                "(inspect one of them, extracted, to see its layers)"
            )
        return _inspect_package(path, args)
    if args.exclusions is not None:
        return _fail(
            "--exclusions applies to a build package (.abp), whose files it marks; "
            f"{args.path} is read as a .clf file"
        )
    return _inspect_clf(path, args)


def _exclusions(explicit: Path | None) -> Any:
    """The exclusions the service would apply: --exclusions, EXCLUSIONS_FILE, built in."""
    from clf_analysis.abp.exclusions import load_exclusions
    from clf_analysis.config import load_settings

    return load_exclusions(explicit or load_settings().exclusions_file)


def _inspect_package(path: Path, args: argparse.Namespace) -> int:
    from clf_analysis.abp.archive import open_archive
    from clf_analysis.abp.errors import BuildError
    from clf_analysis.config import ConfigError

    try:
        exclusions = _exclusions(args.exclusions)
        with open_archive(path) as archive:
            parts = archive.part_files()
    except (BuildError, ConfigError) as exc:
        return _fail(str(exc))
    excluded_by = {p.member: exclusions.match(p.folder) for p in parts}
    if args.json:
        _emit_json(
            [
                {
                    "member": p.member,
                    "folder": p.folder,
                    "name": p.name,
                    "size": p.size,
                    "excluded_by": excluded_by[p.member],
                }
                for p in parts
            ]
        )
        return 0
    skipped = sum(1 for pattern in excluded_by.values() if pattern is not None)
    print(
        f"{path}: {len(parts)} CLF files, {len(parts) - skipped} analysed, {skipped} excluded "
        f"by the folder rules of {exclusions.source}"
    )
    width = max((len(p.folder) for p in parts), default=6)
    print(f"  {'folder':<{width}}  {'name':<16} {'bytes':>12}  excluded by")
    for p in parts:
        pattern = excluded_by[p.member]
        mark = f"  {pattern}" if pattern is not None else ""
        print(f"  {p.folder:<{width}}  {p.name:<16} {p.size:>12,}{mark}")
    return 0


def not_clf_reason(path: Path) -> str | None:
    """Why `path` is no CLF file at all, or None when it starts like one.

    A CLF file starts with its header section, whose id is 0; anything else (a text, an
    image, a zip) is named as such instead of by the byte where the reader gave up.
    """
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        return "the file is empty"
    following = head[0] >> 5
    first = head[: 1 + following]
    if len(first) == 1 + following and head[0] & 0x1F == 0 and not any(first[1:]):
        return None
    shown = " ".join(f"{b:02x}" for b in head[:4])
    if head.startswith(b"PK"):
        return f"a ZIP archive, bytes {shown}: inspect a build package by its .abp name"
    return f"a CLF file starts with its header section, id 0; this one starts with {shown}"


def _inspect_clf(path: Any, args: argparse.Namespace) -> int:
    from clf_analysis.clf import CLFFormatError, open_clf
    from clf_analysis.clf.canonical import describe

    try:
        with open_clf(path) as clf:
            selected: list[Layer] | None = None
            label = ""
            if args.layer is not None:
                if not -len(clf) <= args.layer < len(clf):
                    return _fail(f"{path}: no layer {args.layer}; the file has {len(clf)}")
                selected = [clf.layer(args.layer)]
                label = f"Layer {args.layer}"
            elif args.z is not None:
                missing = _no_layer_at(clf, args.z)
                if missing is not None:
                    return _fail(f"{path}: {missing}")
                selected = [clf.find(args.z)]
                label = f"Layer at z {args.z:.4f}"
            if args.json:
                _emit_json(describe(clf, selected))
            else:
                _print_summary(clf, selected[0] if selected else None, label)
    except CLFFormatError as exc:
        try:
            reason = not_clf_reason(path)
        except OSError:
            reason = None
        return _fail(f"{path}: not a CLF file ({reason})" if reason else str(exc))
    except OSError as exc:
        return _fail(f"{path}: {exc.strerror or exc}")
    return 0


def _no_layer_at(clf: CLFFile, z: float) -> str | None:
    """Why the file has no layer at height z (the rule of `CLFFile.find`), or None."""
    if clf.index_at(z) is not None:
        return None
    if not len(clf):
        return f"no layer at z {z:.4f}: the file has no layers"
    low, high = float(clf.zs[0]), float(clf.zs[-1])
    box = clf.box
    if not box.min_z <= z <= box.max_z:
        return (
            f"no layer at z {z:.4f}: outside the file's z range {box.min_z:.4f} .. "
            f"{box.max_z:.4f} mm (layers {low:.4f} .. {high:.4f})"
        )
    return (
        f"no layer at z {z:.4f}: none within one layer thickness ({clf.thickness:.4f} mm); "
        f"the file's layers span {low:.4f} .. {high:.4f} mm"
    )


def _print_summary(clf: CLFFile, layer: Layer | None, label: str) -> None:
    box = clf.box
    declared = clf.declared_layer_count
    print(f"File:       {clf.source_name}")
    print(f"Name:       {clf.name}")
    print(f"Version:    {clf.version[0]}.{clf.version[1]}")
    if clf.comment is not None:
        print(f"Comment:    {clf.comment}")
    note = "" if declared == len(clf) else f" (header declares {declared})"
    print(f"Layers:     {len(clf)}{note}")
    if len(clf):
        print(f"Z range:    {float(clf.zs[0]):.4f} .. {float(clf.zs[-1]):.4f} mm")
    print(f"Thickness:  {clf.thickness:.4f} mm")
    print(
        f"Box:        x {box.min_x:.4f}..{box.max_x:.4f}  y {box.min_y:.4f}..{box.max_y:.4f}"
        f"  z {box.min_z:.4f}..{box.max_z:.4f} mm"
    )
    print(f"Models:     {len(clf.models)}")
    if clf.models:
        print(f"  {'id':>6}  {'thickness':>9}  name")
        for m in clf.models.values():
            print(f"  {m.id:>6}  {m.thickness:>9.4f}  {m.name}")
    if layer is not None:
        loops = sum(len(s.loops) for s in layer.shapes)
        points = sum(len(loop) for s in layer.shapes for loop in s.loops)
        print(
            f"{label} (z {layer.z:.4f} mm): {len(layer.shapes)} shapes, {loops} loops, "
            f"{points} points"
        )
        if layer.shapes:
            print(f"  {'#':>4}  {'model':>6}  {'kind':<7}  {'loops':>5}  points per loop")
            for i, s in enumerate(layer.shapes):
                sizes = " ".join(str(len(loop)) for loop in s.loops)
                print(f"  {i:>4}  {s.model_id:>6}  {s.kind:<7}  {len(s.loops):>5}  {sizes}")
    # Warnings last: decoding the selected layer may have added some.
    if clf.warnings:
        print(f"Warnings:   {len(clf.warnings)}")
        for w in clf.warnings:
            print(f"  - {w}")
