"""/docs, the API reference, read in a real Chromium (Playwright) from a real server."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from .conftest import LiveServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_docs_is_a_static_page_under_a_strict_policy(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'; style-src 'sha256-")
    text = page.get_data(as_text=True)
    assert "<script" not in text.lower()
    # It reads the description the server serves: every operation and schema is on it.
    doc = client.get("/openapi.json").get_json()
    for item in doc["paths"].values():
        for op in item.values():
            assert f'id="op-{op["operationId"]}"' in text
    for name in doc["components"]["schemas"]:
        assert f'id="schema-{name}"' in text
    assert page.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_a_frontend_developer_finds_an_operation_its_body_and_where_it_leads(
    app: Flask, live_server_factory: Callable[[Flask], LiveServer], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    server = live_server_factory(app)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            refused: list[str] = []
            page.on(
                "console",
                lambda msg: refused.append(msg.text) if msg.type == "error" else None,
            )
            page.goto(server.url + "/docs")
            expect(page).to_have_title("CLF Analysis API 1.0.0")
            # The inline stylesheet ran under the CSP (its hash matched): methods are coloured.
            post = page.locator("nav .method.post").first
            expect(post).to_have_css("background-color", "rgb(21, 101, 192)")

            page.locator("nav a[href='#op-jobs_analyze_post']").click()
            section = page.locator("#op-jobs_analyze_post")
            expect(section).to_be_in_viewport()
            expect(section).to_contain_text("Idempotency-Key")
            expect(section.locator("tr:has(.status[data-status='422'])")).to_contain_text(
                "/problems/validation-error"
            )

            section.locator("a", has_text="AnalyzeRequest").click()
            schema = page.locator("#schema-AnalyzeRequest")
            expect(schema).to_be_in_viewport()
            build_id = schema.locator("tr", has_text="build_id")
            expect(build_id).to_contain_text("[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
            expect(schema.locator("tr", has_text="hole_heights")).to_contain_text(
                "at most 100 items"
            )

            page.go_back()
            section.locator("a", has_text="GET /api/jobs/{job_id}").first.click()
            assert page.url.endswith("#op-jobs_get_job_get")
            expect(page.locator("#op-jobs_get_job_get")).to_be_in_viewport()
            page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)
        finally:
            browser.close()
    assert refused == []
    assert (tmp_path / "docs.png").stat().st_size > 10_000
