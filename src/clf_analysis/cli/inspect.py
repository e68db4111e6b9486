"""`clf-analysis inspect FILE.clf [--json] [--layer N | --z Z]` and `inspect BUILD.abp`.

A CLF file: a human summary (header, models, layer range, warnings, and the shapes of a
selected layer), or with `--json` the canonical structure of `clf.canonical`. A build
package: its CLF files. Malformed input prints one line on stderr and exits with 2.
"""

from __future__ import annotations

import argparse
import sys
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
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"clf-analysis inspect: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _emit_json(value: Any) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(value).decode() + "\n")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    path = Path(args.path)
    if path.suffix.lower() == ".abp":
        return _inspect_package(path, as_json=args.json)
    return _inspect_clf(path, args)


def _inspect_package(path: Any, *, as_json: bool) -> int:
    from clf_analysis.abp.archive import open_archive
    from clf_analysis.abp.errors import BuildError

    try:
        with open_archive(path) as archive:
            parts = archive.part_files()
    except BuildError as exc:
        return _fail(str(exc))
    if as_json:
        _emit_json(
            [
                {"member": p.member, "folder": p.folder, "name": p.name, "size": p.size}
                for p in parts
            ]
        )
        return 0
    print(f"{path}: {len(parts)} CLF files")
    width = max((len(p.folder) for p in parts), default=6)
    print(f"  {'folder':<{width}}  {'name':<16} {'bytes':>12}")
    for p in parts:
        print(f"  {p.folder:<{width}}  {p.name:<16} {p.size:>12,}")
    return 0


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
                selected = [clf.find(args.z)]
                label = f"Layer at z {args.z:.4f}"
            if args.json:
                _emit_json(describe(clf, selected))
            else:
                _print_summary(clf, selected[0] if selected else None, label)
    except CLFFormatError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{path}: {exc.strerror or exc}")
    return 0


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
