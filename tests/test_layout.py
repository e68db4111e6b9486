"""The output layout's names: what the pipeline writes is what the API reads back."""

from __future__ import annotations

import pytest

from clf_analysis.layout import pathdata_height, pathdata_name


@pytest.mark.parametrize("z", [0.05, 0.15000000000000002, 1, 12.3456789, 999.9999])
def test_a_layer_file_name_reads_back_as_its_rounded_height(z: float) -> None:
    assert pathdata_height(pathdata_name(z)) == round(z, 4)


@pytest.mark.parametrize(
    "name",
    [
        "platform_layer_pathdata_1.2.3mm.json",  # matches the pattern, is no number
        "platform_layer_pathdata_-1.0mm.json",
        "platform_layer_pathdata_1.0mm.json.tmp",
        "clean_platform_1.0mm.png",
    ],
)
def test_names_that_are_no_layer_file_give_no_height(name: str) -> None:
    assert pathdata_height(name) is None
