"""The /ui viewer clicked through in a real Chromium (driven by Playwright) against a
real `clf-analysis serve`: submit, follow, cancel, and a refused build."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed"),
]


def test_submit_follow_cancel_and_refusal_in_the_viewer(
    serve_factory, midas: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    served = serve_factory(midas, runner="slow", CLF_TEST_RUNNER_SECONDS="60")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(served.url + "/ui/")
            expect(page.locator("#builds")).to_contain_text("271360")

            page.fill("#submit-build", "271360")
            page.click("#submit-form button[type=submit]")
            expect(page.locator("#job-panel")).to_be_visible()
            expect(page.locator("#job-status")).to_have_text("running", timeout=30_000)
            expect(page.locator("#job-stage")).to_contain_text("layers", timeout=30_000)

            page.click("#job-cancel")
            expect(page.locator("#job-status")).to_have_text("cancelled", timeout=60_000)
            expect(page.locator("#job-cancel")).to_be_disabled()

            page.fill("#submit-build", "no-such-build")
            page.click("#submit-form button[type=submit]")
            expect(page.locator("#submit-error")).to_be_visible()
            expect(page.locator("#submit-error")).to_contain_text("not found")
            page.screenshot(path=str(tmp_path / "viewer.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "viewer.png").stat().st_size > 10_000
