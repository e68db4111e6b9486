"""The build report: GET /api/builds/<id>/report.pdf and `clf-analysis build-report`.

The PDF is checked with poppler, as a reader would open it: every page renders
(pdftoppm), the parts table is text (pdftotext), and each part has its page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from clf_analysis.api import create_app
from clf_analysis.config import Settings
from clf_analysis.jobs.store import JobStore
from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.run import run

from .conftest import CLI, assert_problem

BUILD = "rep-1"


@pytest.fixture(scope="module")
def poppler() -> tuple[str, str]:
    """pdftoppm and pdftotext. Missing: skipped locally, an error in CI (.ci/run installs
    poppler-utils; a skip there would hide the PDF checks)."""
    pdftoppm, pdftotext = shutil.which("pdftoppm"), shutil.which("pdftotext")
    if pdftoppm is None or pdftotext is None:
        message = "poppler-utils is not installed (apt-get install -y poppler-utils)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return pdftoppm, pdftotext


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MIDAS folder with one analysed synthetic build: one file of each design (nine
    parts: one file holds two), one of them with self-intersecting loops."""
    from clf_analysis.synth import generate_build

    midas = tmp_path_factory.mktemp("report") / "midas"
    generate_build(midas, build_id=BUILD, parts=8, height_mm=2.0, seed=4)
    run(BUILD, AnalysisParams(holes_interval=1.0), midas_base_path=midas)
    (midas / "empty").mkdir()
    (midas / "empty" / "empty.abp").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    return midas


@pytest.fixture
def report_client(analysed: Path, make_settings: type[Settings], store: JobStore) -> FlaskClient:
    app: Flask = create_app(make_settings(midas_base_path=analysed), store=store)  # type: ignore[operator]
    return app.test_client()


def info_of(midas: Path) -> dict:
    return json.loads((midas / BUILD / "clf_analysis" / "platform_info.json").read_text())


def pdf_pages_text(pdftotext: str, pdf: Path) -> list[str]:
    text = subprocess.run(
        [pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    return text.split("\f")[:-1]  # pdftotext ends every page with a form feed


def test_the_report_is_a_pdf_with_an_etag_that_follows_the_results(
    report_client: FlaskClient,
) -> None:
    response = report_client.get(f"/api/builds/{BUILD}/report.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-")
    assert response.headers["Content-Disposition"] == f'inline; filename="{BUILD}_build_report.pdf"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    etag = response.headers["ETag"]
    again = report_client.get(f"/api/builds/{BUILD}/report.pdf", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["ETag"] == etag
    other = report_client.get(
        f"/api/builds/{BUILD}/report.pdf", headers={"If-None-Match": '"report-0-0-0"'}
    )
    assert other.status_code == 200 and other.data == response.data  # the same bytes again


def test_every_page_renders_the_parts_table_is_text_and_each_part_has_a_page(
    report_client: FlaskClient, analysed: Path, tmp_path: Path, poppler: tuple[str, str]
) -> None:
    pdftoppm, pdftotext = poppler
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(report_client.get(f"/api/builds/{BUILD}/report.pdf").data)
    info = info_of(analysed)
    parts = info["parts"]
    views = info["holes_views_interval"]["views"]

    pages = pdf_pages_text(pdftotext, pdf)
    # Summary, warnings and invalid loops (the build has a defective part), the plate at
    # every holes-view height, one page per part.
    assert len(pages) == 1 + 1 + len(views) + len(parts)
    subprocess.run(
        [pdftoppm, "-r", "20", "-png", str(pdf), str(tmp_path / "page")], check=True, timeout=120
    )
    rendered = sorted(tmp_path.glob("page-*.png"))
    assert len(rendered) == len(pages)
    assert all(p.stat().st_size > 1000 for p in rendered)

    summary = pages[0]
    assert f"Build report — build {BUILD}" in summary
    assert info["build"]["sha256"] in summary
    assert f"Parts ({len(parts)})" in summary
    for number, part in enumerate(parts, 1):
        row = next(line for line in summary.splitlines() if line.strip().startswith(f"{number} "))
        assert f"{part['folder']}/{part['file']} #{part['model_id']}" in row
        assert f"{part['volume_mm3']:,.1f}" in row
        assert re.search(rf"\b{part['layer_count']}\b", row)

    assert "self-intersection" in pages[1]
    thickness = info["global_height_info"]["layer_thickness"]
    for view, page in zip(views, pages[2 : 2 + len(views)], strict=True):
        # The layer that answers the view's height: 0 mm is answered by the first layer.
        assert f"Build {BUILD} — holes at z = {max(view['height'], thickness):g} mm" in page
        assert "metal: even nesting depth" in page

    part_pages = pages[2 + len(views) :]
    for number, (part, page) in enumerate(zip(parts, part_pages, strict=True), 1):
        title = f"Part {number}: {part['model_name']}"
        assert title in page
        assert sum(title in p for p in pages) == 1
        assert f"{part['folder']}/{part['file']}, model id {part['model_id']}" in page
        assert "holes over height" in page


def test_the_cli_writes_the_same_report(
    report_client: FlaskClient, analysed: Path, tmp_path: Path
) -> None:
    served = report_client.get(f"/api/builds/{BUILD}/report.pdf").data
    out = tmp_path / "cli.pdf"
    by_path = subprocess.run(
        [str(CLI), "build-report", str(analysed / BUILD), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert by_path.returncode == 0, by_path.stderr
    assert out.read_bytes() == served
    by_id = subprocess.run(
        [str(CLI), "build-report", BUILD],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"MIDAS_BASE_PATH": str(analysed), "PATH": "/usr/bin:/bin"},
        timeout=180,
    )
    assert by_id.returncode == 0, by_id.stderr
    assert (tmp_path / f"{BUILD}_build_report.pdf").read_bytes() == served


def test_the_cli_says_when_there_are_no_results(analysed: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(CLI), "build-report", str(analysed / "empty")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1
    assert "no analysis results in" in result.stderr and "clf_analysis is missing" in result.stderr
    assert not list(tmp_path.iterdir())


def test_no_results_is_a_404_problem(report_client: FlaskClient) -> None:
    body = assert_problem(report_client.get("/api/builds/empty/report.pdf"), 404)
    assert body["type"].endswith("/results-not-found")


def test_results_that_are_no_summary_are_a_500_problem(
    analysed: Path, tmp_path: Path, make_settings: type[Settings], store: JobStore
) -> None:
    midas = tmp_path / "copy"
    shutil.copytree(analysed / BUILD, midas / BUILD)
    (midas / BUILD / "clf_analysis" / "platform_info.json").write_text("[1, 2]")
    app = create_app(make_settings(midas_base_path=midas), store=store)  # type: ignore[operator]
    body = assert_problem(app.test_client().get(f"/api/builds/{BUILD}/report.pdf"), 500)
    assert body["type"].endswith("/results-unreadable")


def test_a_listed_file_gone_missing_is_a_503_to_retry(
    analysed: Path, tmp_path: Path, make_settings: type[Settings], store: JobStore
) -> None:
    midas = tmp_path / "copy"
    shutil.copytree(analysed / BUILD, midas / BUILD)
    for view in (midas / BUILD / "clf_analysis" / "identifier_views").glob("identifier_*"):
        view.unlink()
    app = create_app(make_settings(midas_base_path=midas), store=store)  # type: ignore[operator]
    response = app.test_client().get(f"/api/builds/{BUILD}/report.pdf")
    body = assert_problem(response, 503)
    assert body["type"].endswith("/results-changing")
    assert response.headers["Retry-After"] == "1"
