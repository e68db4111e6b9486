"""A wrong or missing MIDAS_BASE_PATH is named where it shows: the builds list that cannot
be read (what the viewer shows) and a submit of a build that is not there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from clf_analysis.api import create_app
from clf_analysis.config import Settings
from clf_analysis.jobs.store import JobStore

from .conftest import assert_problem


def test_an_unreadable_builds_folder_names_the_base_path(
    make_settings: Callable[..., Settings], store: JobStore, tmp_path: Path
) -> None:
    missing = tmp_path / "not-mounted"
    client = create_app(make_settings(midas_base_path=missing), store=store).test_client()
    body = assert_problem(client.get("/api/builds"), 503)
    assert body["detail"] == (
        f"the builds folder {missing} (MIDAS_BASE_PATH) cannot be read: no such file or directory"
    )
    assert body["midas_base_path"] == str(missing)
    assert body["type"].endswith("/builds-unreadable")


def test_an_unknown_build_says_where_it_was_looked_for(
    make_settings: Callable[..., Settings], store: JobStore, midas: Path
) -> None:
    client = create_app(make_settings(), store=store).test_client()
    for response in (
        client.post("/api/builds/nope/analyze"),
        client.post("/api/analyze", json={"build_id": "nope"}),
    ):
        body = assert_problem(response, 404)
        assert body["detail"] == (
            f"build nope not found under {midas} (no folder or no .abp package)"
        )
        assert body["midas_base_path"] == str(midas)
        assert body["build_id"] == "nope"
    assert not (midas / "nope").exists()
