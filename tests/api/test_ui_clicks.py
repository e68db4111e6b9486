"""The /ui viewer clicked through in a real Chromium (driven by Playwright) against a
real `clf-analysis serve`: submit, follow, cancel, a refused build; and, on a synthetic
build the service analysed, the images, the layer canvas (keyboard, hover, hash, pixels),
the jump from an invalid loop to its layer and the phone-width layout."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import requests

from clf_analysis.synth import generate_build

from .conftest import ServeProcess, serve_env, start_serve, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BUILD = "viewer-1"
COLOUR_TOLERANCE = 12  # per channel; area interiors are painted in one flat colour

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed"),
]


def launch(p: Any) -> Any:
    return p.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


def test_submit_follow_cancel_and_refusal_in_the_viewer(
    serve_factory, midas: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    served = serve_factory(midas, runner="slow", CLF_TEST_RUNNER_SECONDS="60")
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(served.url + "/ui/")
            row_job = page.locator('#builds tr[data-build-id="271360"] .last-job')
            expect(row_job).to_have_text("—")

            page.fill("#submit-build", "271360")
            page.click("#submit-form button[type=submit]")
            expect(page.locator("#job-panel")).to_be_visible()
            expect(page.locator("#job-status")).to_have_text("running", timeout=30_000)
            expect(page.locator("#job-stage")).to_contain_text("layers", timeout=30_000)
            # The builds table follows the run by itself: no click on Refresh.
            expect(row_job).to_contain_text("running", timeout=30_000)
            expect(row_job).to_contain_text("%")

            page.click("#job-cancel")
            expect(page.locator("#job-status")).to_have_text("cancelled", timeout=60_000)
            expect(page.locator("#job-cancel")).to_be_disabled()
            expect(row_job).to_have_text("cancelled", timeout=30_000)

            page.fill("#submit-build", "no-such-build")
            page.click("#submit-form button[type=submit]")
            expect(page.locator("#submit-error")).to_be_visible()
            expect(page.locator("#submit-error")).to_contain_text("not found")
            page.screenshot(path=str(tmp_path / "viewer.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "viewer.png").stat().st_size > 10_000


# --- a synthetic build analysed by the service, shared by the tests below -------------------


@dataclass
class Analysed:
    served: ServeProcess
    info: dict[str, Any]
    heights: list[float]
    browser: Any

    @property
    def page_url(self) -> str:
        return f"{self.served.url}/ui/#build={BUILD}"

    def layer(self, z: float) -> list[dict[str, Any]]:
        url = f"{self.served.url}/api/builds/{BUILD}/layers/{z}"
        records: list[dict[str, Any]] = requests.get(url, timeout=10).json()
        return records


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Analysed]:
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("viewer")
    midas = root / "midas"
    # Eight designs: the island in a hole and the tube with self-intersecting loops are in.
    generate_build(midas, build_id=BUILD, parts=8, height_mm=4.0, seed=3)
    env = serve_env(midas, root / "state", ANALYSIS_PROCESSES="1")
    served = start_serve(env, root / "serve.log", runner="pipeline")
    try:
        job_url = (
            served.url
            + requests.post(f"{served.url}/api/builds/{BUILD}/analyze", timeout=10).json()[
                "check_status_url"
            ]
        )

        def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = requests.get(job_url, timeout=10).json()["job"]
            return job if job["status"] in ("completed", "failed", "cancelled") else None

        job = wait_for(finished, timeout=240, interval=0.5)
        assert job["status"] == "completed", job.get("error")
        info = requests.get(f"{served.url}/api/builds/{BUILD}/results", timeout=10).json()
        heights = requests.get(f"{served.url}/api/builds/{BUILD}/layers", timeout=10).json()
        with sync_playwright() as p:
            browser = launch(p)
            try:
                yield Analysed(served, info["platform_info"], heights["heights"], browser)
            finally:
                browser.close()
    finally:
        served.stop(signal.SIGKILL, timeout=10)


def js_number(value: float) -> str:
    """A number as JavaScript's String() writes it (1.0 → "1", 0.05 → "0.05")."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def open_viewer(analysed: Analysed, layer: float | None = None, width: int = 1300) -> Any:
    from playwright.sync_api import expect

    page = analysed.browser.new_page(viewport={"width": width, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    suffix = "" if layer is None else f"&layer={js_number(layer)}"
    page.goto(analysed.page_url + suffix)
    canvas = page.locator("#layer-canvas")
    if layer is None:
        expect(canvas).to_have_attribute(
            "data-height", js_number(analysed.heights[len(analysed.heights) // 2])
        )
    else:
        expect(canvas).to_have_attribute("data-height", js_number(layer))
    settle(page)
    return page


def settle(page: Any) -> None:
    """Two animation frames: the canvas paints on the next one."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def island_part(analysed: Analysed) -> dict[str, Any]:
    return next(p for p in analysed.info["parts"] if "Island In Hole" in p["folder"])


def island_geometry(analysed: Analysed, z: float) -> dict[str, Any]:
    """The island-in-hole part at z: its loops by depth, the island's centre and a point in
    the middle of the hole ring (between the island and the hole's edge)."""
    part = island_part(analysed)
    loops = {
        r["nesting_depth"]: r
        for r in analysed.layer(z)
        if r["clf_folder"] == part["folder"] and r["kind"] == "model"
    }
    assert sorted(loops) == [0, 1, 2]

    def box(record: dict[str, Any]) -> tuple[float, float, float]:
        xs = [pt[0] for pt in record["points"]]
        ys = [pt[1] for pt in record["points"]]
        return (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2, (max(xs) - min(xs)) / 2

    cx, cy, island_r = box(loops[2])
    _, _, hole_r = box(loops[1])
    _, _, outer_r = box(loops[0])
    return {
        "part": part,
        "loops": loops,
        "island": (cx, cy),
        "ring": (cx + (island_r + hole_r) / 2, cy),
        "wall": (cx - (hole_r + outer_r) / 2, cy),
    }


def canvas_point(page: Any, x: float, y: float) -> tuple[float, float]:
    """Where the mm point (x, y) is drawn, in CSS px from the canvas's top-left corner."""
    view = page.evaluate("() => ({...document.getElementById('layer-canvas').dataset})")
    s = float(view["pxPerMm"])
    return float(view["originX"]) + x * s, float(view["originY"]) - y * s


def palette(page: Any) -> dict[str, tuple[int, int, int]]:
    names = ("--metal", "--hole", "--alarm", "--plate")
    script = "names => names.map(n => getComputedStyle(document.documentElement)"
    script += ".getPropertyValue(n).trim())"
    values = page.evaluate(script, list(names))
    out = {}
    for name, value in zip(names, values, strict=True):
        assert value.startswith("#") and len(value) == 7, value
        out[name.strip("-")] = tuple(int(value[i : i + 2], 16) for i in (1, 3, 5))
    return out


def colour_at(shot: np.ndarray, px: float, py: float) -> tuple[int, int, int]:
    b, g, r = shot[int(py), int(px)][:3]
    return int(r), int(g), int(b)


def assert_colour(actual: tuple[int, int, int], wanted: tuple[int, int, int], what: str) -> None:
    assert max(abs(a - w) for a, w in zip(actual, wanted, strict=True)) <= COLOUR_TOLERANCE, (
        f"{what}: {actual} is not {wanted}"
    )


def test_an_image_opens_full_size_and_steps_to_the_next(analysed: Analysed) -> None:
    from playwright.sync_api import expect

    page = open_viewer(analysed)
    headings = page.locator("#images h4").all_inner_texts()
    for group in ("Holes views", "Part views", "Clean platforms", "Identifier views"):
        assert any(h.startswith(group) for h in headings), headings
    captions = page.locator("#images figcaption").all_inner_texts()
    assert captions and not any(".png" in c for c in captions), captions
    island = island_part(analysed)
    assert any(island["model_name"] in c and island["folder"] in c for c in captions)

    thumbs = page.locator("#images button.thumb")
    total = thumbs.count()
    thumbs.nth(1).click()
    box = page.locator("#lightbox")
    expect(box).to_be_visible()
    expect(box.locator(".lb-count")).to_have_text(f"2 / {total}")
    expect(box.locator(".lb-title")).to_have_text(captions[1].split("\n")[0])
    image = box.locator("img")
    page.wait_for_function("() => document.querySelector('#lightbox img').complete")
    # The picture itself (not a reduced copy), shown far larger than its thumbnail.
    src = image.get_attribute("src")
    assert src == thumbs.nth(1).locator("img").get_attribute("src")
    png = requests.get(analysed.served.url + src, timeout=10).content
    full = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image.evaluate("img => img.naturalWidth") == full.shape[1]
    assert image.bounding_box()["width"] > 2 * thumbs.nth(1).bounding_box()["width"]
    first_src = image.get_attribute("src")

    page.keyboard.press("ArrowRight")
    expect(box.locator(".lb-count")).to_have_text(f"3 / {total}")
    expect(box.locator(".lb-title")).to_have_text(captions[2].split("\n")[0])
    assert image.get_attribute("src") != first_src
    box.locator(".lb-next").click()
    expect(box.locator(".lb-count")).to_have_text(f"4 / {total}")
    box.locator(".lb-prev").click()
    expect(box.locator(".lb-count")).to_have_text(f"3 / {total}")
    page.keyboard.press("Escape")
    expect(box).to_be_hidden()

    # A part's row opens that part's view.
    row = page.locator(f'#parts tr[data-part-key="{island["part_key"]}"]')
    row.locator("td").nth(1).click()
    expect(box).to_be_visible()
    expect(box.locator(".lb-title")).to_contain_text(island["model_name"])
    assert island["part_key"] in image.get_attribute("src")
    assert page.errors == []
    page.close()


def test_arrow_and_page_keys_step_through_layers(analysed: Analysed) -> None:
    from playwright.sync_api import expect

    h = analysed.heights
    page = open_viewer(analysed, layer=h[5])
    canvas = page.locator("#layer-canvas")
    canvas.focus()
    for key, index in [
        ("ArrowRight", 6),
        ("ArrowUp", 7),
        ("PageUp", 17),
        ("ArrowLeft", 16),
        ("PageDown", 6),
        ("ArrowDown", 5),
        ("Home", 0),
        ("ArrowDown", 0),  # stays on the first layer
        ("End", len(h) - 1),
    ]:
        page.keyboard.press(key)
        expect(canvas).to_have_attribute("data-height", js_number(h[index]))
        expect(page.locator("#layer-height")).to_have_text(f"z = {js_number(h[index])} mm")
        assert page.evaluate("location.hash") == f"#build={BUILD}&layer={js_number(h[index])}"
    page.locator("#layer-prev").click()
    expect(canvas).to_have_attribute("data-height", js_number(h[-2]))
    assert page.errors == []
    page.close()


def test_hovering_a_hole_names_its_part_and_reads_its_area(analysed: Analysed) -> None:
    from playwright.sync_api import expect

    z_range = island_part(analysed)["z_range"]
    z = min(analysed.heights, key=lambda h: abs(h - sum(z_range) / 2))
    geo = island_geometry(analysed, z)
    part, hole, island = geo["part"], geo["loops"][1], geo["loops"][2]
    page = open_viewer(analysed, layer=z)
    canvas = page.locator("#layer-canvas")
    canvas.scroll_into_view_if_needed()
    settle(page)
    box = canvas.bounding_box()
    tip = page.locator("#canvas-tip")

    x, y = canvas_point(page, *geo["ring"])
    page.mouse.move(box["x"] + x, box["y"] + y)
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("hole (nesting depth 1)")
    expect(tip).to_contain_text(f"area {hole['area_mm2']:.2f} mm²")
    expect(tip).to_contain_text(f"{part['folder']}/{part['file']}")
    expect(tip).to_contain_text(f"{part['model_name']} · model {part['model_id']}")
    expect(tip).to_contain_text(f"loop {hole['identifier']}")

    x, y = canvas_point(page, *geo["island"])
    page.mouse.move(box["x"] + x, box["y"] + y)
    expect(tip).to_contain_text("metal (nesting depth 2)")
    expect(tip).to_contain_text(f"area {island['area_mm2']:.2f} mm²")
    page.mouse.move(0, 0)
    expect(tip).to_be_hidden()
    assert page.errors == []
    page.close()


def test_an_invalid_loop_jumps_to_its_layer_in_the_alarm_colour(analysed: Analysed) -> None:
    from playwright.sync_api import expect

    invalid = analysed.info["invalid_loops"]
    assert invalid, "the synthetic build has self-intersecting loops"
    page = open_viewer(analysed)
    shown = float(page.locator("#layer-canvas").get_attribute("data-height"))
    loop = next(item for item in invalid if abs(item["z"] - shown) > 1e-6 and item["at"])
    row = page.locator("#invalid-loops tbody tr").nth(invalid.index(loop))
    expect(row).to_contain_text(loop["reason"])
    row.locator("button.go-layer").click()

    canvas = page.locator("#layer-canvas")
    expect(canvas).to_have_attribute("data-height", js_number(loop["z"]))
    expect(page.locator("#layer-height")).to_have_text(f"z = {js_number(loop['z'])} mm")
    assert page.evaluate("location.hash") == f"#build={BUILD}&layer={js_number(loop['z'])}"
    expect(page.locator("#layer-info")).to_contain_text("1 invalid loop")
    settle(page)
    shot = cv2.imdecode(np.frombuffer(canvas.screenshot(), np.uint8), cv2.IMREAD_COLOR)
    colours = palette(page)
    assert_colour(
        colour_at(shot, *canvas_point(page, *loop["at"])), colours["alarm"], "invalid loop"
    )

    box = canvas.bounding_box()
    x, y = canvas_point(page, *loop["at"])
    page.mouse.move(box["x"] + x, box["y"] + y)
    expect(page.locator("#canvas-tip")).to_contain_text(f"invalid loop: {loop['reason']}")
    assert page.errors == []
    page.close()


def test_editing_the_hash_changes_the_layer_and_a_reload_keeps_it(analysed: Analysed) -> None:
    from playwright.sync_api import expect

    h = analysed.heights
    page = open_viewer(analysed, layer=h[2])
    canvas = page.locator("#layer-canvas")
    page.evaluate("z => { location.hash = `#build=viewer-1&layer=${z}` }", js_number(h[-3]))
    expect(canvas).to_have_attribute("data-height", js_number(h[-3]))
    expect(page.locator("#layer-slider")).to_have_value(str(len(h) - 3))
    # A height between two layers shows the nearest one.
    page.evaluate(
        "z => { location.hash = `#build=viewer-1&layer=${z}` }", str(h[4] + 0.3 * (h[5] - h[4]))
    )
    expect(canvas).to_have_attribute("data-height", js_number(h[4]))
    page.reload()
    expect(canvas).to_have_attribute("data-height", js_number(h[4]))
    expect(page.locator("#results-build")).to_have_text(BUILD)
    assert page.errors == []
    page.close()


def test_the_canvas_paints_metal_holes_and_an_island_by_nesting(analysed: Analysed) -> None:
    from playwright.sync_api import expect

    part = island_part(analysed)
    page = open_viewer(analysed)
    # The part's "layers" button: its middle layer, zoomed to its bounding box.
    page.locator(f'#parts tr[data-part-key="{part["part_key"]}"] button', has_text="layers").click()
    canvas = page.locator("#layer-canvas")
    z = float(page.locator("#layer-canvas").get_attribute("data-height"))
    assert part["z_range"][0] <= z <= part["z_range"][1]
    expect(canvas).to_be_focused()
    settle(page)
    geo = island_geometry(analysed, z)
    shot = cv2.imdecode(np.frombuffer(canvas.screenshot(), np.uint8), cv2.IMREAD_COLOR)
    colours = palette(page)
    assert_colour(colour_at(shot, *canvas_point(page, *geo["island"])), colours["metal"], "island")
    assert_colour(colour_at(shot, *canvas_point(page, *geo["ring"])), colours["hole"], "hole ring")
    assert_colour(colour_at(shot, *canvas_point(page, *geo["wall"])), colours["metal"], "wall")
    assert page.errors == []
    page.close()


def test_the_viewer_fits_a_420_px_wide_screen(analysed: Analysed) -> None:
    page = open_viewer(analysed, width=420)
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    box = page.locator("#layer-canvas").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 420
    page.locator("#images button.thumb").first.click()
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    assert page.errors == []
    page.close()
