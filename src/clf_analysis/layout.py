"""Where the service writes in a build folder, and how heights and lengths are written.

The pipeline writes this layout and the API reads it back; both import these names, so
the two sides cannot drift apart (docs/OUTPUTS.md is the reference for readers).

    <build folder>/
        clf_analysis/                       OUTPUT_DIR, the published results
            platform_info.json              PLATFORM_INFO
            imagePathRawData-/              PATHDATA_DIR
                platform_layer_pathdata_<h>mm.json        pathdata_name(z)
            clean_platforms/clean_platform_<h>mm.png      clean_platform_name(z)
            composite_platforms/platform_composite_folders_<h>mm.png
            holes_views/combined_holes_platform_view_<h>mm.png
            identifier_views/identifier_<part key>_platform_view.png, …
            unclosed_shapes_platform_view.png
        clf_analysis.tmp-<run id>/          a run's private output until published
        clf_analysis.tmp-<run id>.spool/    its per-file path-data spools
        clf_analysis.old-<run id>/          the previous results during a swap
        .clf_analysis.lock                  readers shared, the publishing swap exclusive
        .clf_analysis.run.lock              one run per build at a time
        processes_run.json (+ .lock)        the run log shared with other services

`<h>` is the height rounded to 4 decimals and written as Python writes the float
("0.05", "12.35", "1.0"). Lengths and heights inside the files have the same 4 decimals.

Only the standard library here: the API imports this module and stays free of numpy.
"""

from __future__ import annotations

import re

# 0.1 µm: far below the machine's resolution, and what the legacy service wrote.
MM_DECIMALS = 4

OUTPUT_DIR = "clf_analysis"
TMP_PREFIX = f"{OUTPUT_DIR}.tmp-"
OLD_PREFIX = f"{OUTPUT_DIR}.old-"
SPOOL_SUFFIX = ".spool"
LOCK_FILE = ".clf_analysis.lock"
RUN_LOCK_FILE = ".clf_analysis.run.lock"
RUN_LOG = "processes_run.json"

PLATFORM_INFO = "platform_info.json"
PATHDATA_DIR = "imagePathRawData-"
IDENTIFIER_DIR = "identifier_views"
CLEAN_DIR = "clean_platforms"
COMPOSITE_DIR = "composite_platforms"
HOLES_DIR = "holes_views"
ALL_PATHDATA = "transparent_all_pathdata_210mmx210mm_2100px.png"
ALL_PATHDATA_NO_ID = "transparent_all_pathdata_WITH_NO_ID_210mmx210mm_2100px.png"
COMBINED_IDENTIFIERS = "combined_identifiers_platform_view.png"
UNCLOSED = "unclosed_shapes_platform_view.png"

# The consumers' own pattern for layer files (OUTPUTS.md); a name it does not match is
# not a layer file.
PATHDATA_FILE = re.compile(r"^platform_layer_pathdata_([0-9.]+)mm\.json$")


def mm(value: float) -> float:
    """A length or height in mm as the outputs write it: rounded to 4 decimals."""
    return round(float(value), MM_DECIMALS)


def height_name(z: float) -> str:
    """`z` as file names write it: rounded to 4 decimals, then Python's str(float)."""
    return str(mm(z))


def pathdata_name(z: float) -> str:
    """The layer file of height `z` (in `PATHDATA_DIR`)."""
    return f"platform_layer_pathdata_{height_name(z)}mm.json"


def pathdata_height(name: str) -> float | None:
    """The height a layer file's name gives, None for any other name."""
    match = PATHDATA_FILE.match(name)
    if match is None:
        return None
    try:
        return float(match.group(1))
    except ValueError:  # "1.2.3" matches the pattern but is no number
        return None


def clean_platform_name(z: float) -> str:
    """The clean plate image of height `z` (in `CLEAN_DIR`)."""
    return f"clean_platform_{height_name(z)}mm.png"


def composite_name(z: float) -> str:
    """The composite view of height `z` (in `COMPOSITE_DIR`)."""
    return f"platform_composite_folders_{height_name(z)}mm.png"


def holes_view_name(z: float) -> str:
    """The holes view of height `z` (in `HOLES_DIR`)."""
    return f"combined_holes_platform_view_{height_name(z)}mm.png"


def identifier_view_name(part_key: str) -> str:
    """The view of one part (in `IDENTIFIER_DIR`), named by its part key."""
    return f"identifier_{part_key}_platform_view.png"


def temp_output_name(run_id: str) -> str:
    """The folder a run writes its outputs into before they are published."""
    return f"{TMP_PREFIX}{run_id}"


def spool_name(run_id: str) -> str:
    """The folder beside the temp output where a run keeps its per-file path-data spools."""
    return f"{TMP_PREFIX}{run_id}{SPOOL_SUFFIX}"


def old_output_name(run_id: str) -> str:
    """The name the previous results take while a run's outputs are swapped in."""
    return f"{OLD_PREFIX}{run_id}"
