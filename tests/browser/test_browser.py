"""Real-browser smoke test: `streamlit run app.py` served on localhost, opened in headless Chromium.

Set REPSCOPE_SCREENSHOTS=<folder> to keep the screenshots (`make screenshot` refreshes the
README's picture this way).
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.encoders.registry import describe
from core.export import find_chromium
from tests.browser.server import browser_page, click_an_item, served


@pytest.fixture(scope="module")
def served_app(isolated_cache):
    from core.data.datasets import demo
    from core.features.extract import extract
    from core.features.store import FeatureStore

    image_set = demo(isolated_cache)  # the analysis pages need the default encoders' features
    for spec in ("bundled:efficientnet_lite0", "pixels:32"):
        extract(image_set, describe(spec), "all", FeatureStore(isolated_cache / "features"))
    with served(isolated_cache) as url:
        yield url


def screenshot_page(base_url: str, path: str, title: str, last_element: str, shot: Path, height: int,
                    click: str | None = None, charts: int = 1, fill: dict[str, str] | None = None,
                    inspect=None) -> int:
    """Open one page in headless Chromium (type `fill` into labelled inputs, press the `click` button), wait
    until it has drawn, screenshot.

    Waits (up to 2 min) for at least `charts` plotly charts: plotly.js is a lazily loaded bundle, so on a busy
    machine the charts can appear seconds after the script has finished. `inspect(page)` runs last, for
    assertions on what the page shows. Returns the number of charts drawn.
    """
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        page = browser.new_page(viewport={"width": 1500, "height": height})
        page.goto(f"{base_url}/{path}")
        page.wait_for_selector(f"h1:has-text('{title}')", timeout=180_000)
        for label, value in (fill or {}).items():
            field = page.get_by_role("spinbutton", name=label)  # not the widget's "Help for …" button
            field.fill(value)
            field.press("Enter")
            page.wait_for_timeout(1500)  # the rerun starts a moment after Enter; then wait for it to end
            page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=120_000)
        if click:
            page.get_by_role("button", name=click).click()
        page.wait_for_selector(last_element, timeout=300_000)
        page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=300_000)
        try:
            page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {charts}",
                                   timeout=120_000)
        except sync_api.TimeoutError:
            pass  # the caller's assertion on the count says what is missing
        page.mouse.move(0, 0)  # no tooltip of the clicked button in the screenshot
        page.wait_for_timeout(1000)  # let plotly finish drawing the last trace
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.locator("[data-testid='stSidebar']").get_by_text("Encoders").count() >= 1
        # st.navigation's labels, not file names: a deep link on a fresh server must not fall back
        # to legacy pages/ discovery.
        assert page.locator("[data-testid='stSidebarNav']").get_by_text("Layer probes").count() == 1
        drawn = page.locator(".js-plotly-plot").count()
        if inspect is not None:
            inspect(page)
        page.screenshot(path=str(shot))
        browser.close()
    keep = os.environ.get("REPSCOPE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
    return drawn


def _a_click_opens_the_card(chart_title: str, images: int, image_ids=None):
    """An `inspect` for screenshot_page: a click on a point of the chart opens the item's card with `images`
    images (the item and its neighbours per representation), captioned with the item's id when `image_ids`."""
    def inspect(page) -> None:
        row = click_an_item(page, chart_title)
        page.wait_for_function(f"document.querySelectorAll(\"[data-testid='stImage']\").length >= {images}",
                               timeout=60_000)
        assert page.locator("[data-testid='stImage']").count() == images
        if image_ids is not None:
            assert page.locator("[data-testid='stImage']").first.inner_text().strip() == image_ids[row]
        assert page.locator("[data-testid='stException']").count() == 0
    return inspect


@pytest.mark.slow  # first on purpose: opens a deep link on the fresh server (see the navigation check)
def test_affect_page_renders_in_chromium(served_app, isolated_cache, tmp_path) -> None:
    from core.data.datasets import demo

    ids = demo(isolated_cache).metadata["image_id"].tolist()
    # A click on a prediction: the image, then its 6 nearest in each of the two default encoders.
    charts = screenshot_page(served_app, "affect", "Affect", "text=5 · Error geometry", tmp_path / "affect.png", 4200,
                             charts=4, inspect=_a_click_opens_the_card("Prediction errors", 1 + 2 * 6, ids))
    assert charts == 4


@pytest.mark.slow
def test_features_page_renders_in_chromium(served_app, tmp_path) -> None:
    charts = screenshot_page(served_app, "", "Features", ".js-plotly-plot", tmp_path / "features.png", 1000)
    assert charts >= 1 and (tmp_path / "features.png").stat().st_size > 20_000


@pytest.mark.slow
def test_probes_page_renders_in_chromium(served_app, tmp_path) -> None:
    charts = screenshot_page(served_app, "probes", "Layer probes", "text=Where does each curve",
                             tmp_path / "probes.png", 1800, click="Compute probe curves", charts=2)
    assert charts == 2


def _metric(page, label: str) -> str:
    return page.locator("[data-testid='stMetric']").filter(has_text=label).locator(
        "[data-testid='stMetricValue']").inner_text()


def _demo_alignment_is_the_known_answer(page) -> None:
    """Issue 15: with the defaults the demo aligned below chance; human vs raw pixels is now its known answer."""
    assert "pixels:32 · final" in page.locator("[data-testid='stSelectbox']").filter(
        has_text="Target").first.locator("input").input_value()
    assert float(_metric(page, "Top-1 matching").rstrip("%")) >= 50  # chance 0.26 %
    assert float(_metric(page, "Category matching").rstrip("%")) >= 80  # chance 25 %
    assert page.get_by_text("below chance").count() == 0 and page.get_by_text("one tried").count() == 0


NOT_CUT = "(texts) => texts.every((text) => text.scrollWidth <= text.clientWidth)"


def _export_menus_read_in_full(page) -> None:
    """Issue 30: six export buttons in a half-width column read "P…" and "HT…". Each figure now has one Export menu
    whose label and buttons read in full (the matching rates sit in a 2/5 column), and no chart offers Plotly's own
    camera, whose PNG carried no provenance."""
    # :visible: Streamlit keeps a hidden copy of each popover's button (to measure it).
    menus = page.locator("[data-testid='stPopoverButton']:visible").filter(has_text="Export")
    assert menus.count() == page.locator(".js-plotly-plot").count()
    assert menus.locator("p").evaluate_all(NOT_CUT)
    assert page.locator(".modebar-btn[data-title='Download plot as a PNG']").count() == 0
    assert page.locator(".modebar-btn[data-title='Pan']").count() >= menus.count()  # the mode bars are drawn
    menus.nth(2).click()  # the matching rates' menu
    buttons = page.locator("[data-testid='stPopoverBody'] button:visible")
    buttons.first.wait_for(timeout=10_000)
    assert buttons.all_inner_texts()[-3:] == ["HTML interactive", "CSV numbers", "ZIP everything"]
    assert buttons.locator("p").evaluate_all(NOT_CUT)
    page.keyboard.press("Escape")


@pytest.mark.slow
def test_alignment_page_renders_in_chromium(served_app, isolated_cache, tmp_path) -> None:
    from core.data.datasets import demo

    ids = demo(isolated_cache).metadata["image_id"].tolist()
    card = _a_click_opens_the_card("Selected transport plan", 1 + 2 * 6, ids)  # the drill-down's source item

    def inspect(page) -> None:
        _demo_alignment_is_the_known_answer(page)
        _export_menus_read_in_full(page)
        card(page)
    charts = screenshot_page(served_app, "alignment", "Alignment", "text=RSA vs GWOT across targets",
                             tmp_path / "alignment.png", 3600, click="Run alignment", charts=6, inspect=inspect)
    assert charts == 6  # with the drill-down's category confusion


@pytest.mark.slow
def test_similarity_page_computes_in_chromium(served_app, tmp_path) -> None:
    # Default measures (linear CKA, RSA, mutual k-NN) over human, EfficientNet final and pixels: three heatmaps and
    # the measure-agreement plot.
    charts = screenshot_page(served_app, "similarity", "Similarity", "text=Every pair × measure",
                             tmp_path / "similarity.png", 3600, click="Compute", charts=4)
    assert charts == 4


@pytest.mark.slow
def test_manifolds_page_renders_in_chromium(served_app, tmp_path) -> None:
    charts = screenshot_page(served_app, "manifolds", "Manifolds", "text=Metrics", tmp_path / "manifolds.png", 4200,
                             click="Extract views", charts=2 * 2 + 4,
                             fill={"Images per class": "8", "Views per image (m)": "4"},
                             inspect=_a_click_opens_the_card("Sub-manifold centroids", 1 + 2 * 6))
    assert charts == 2 * 2 + 4


@pytest.mark.slow
def test_inductive_bias_page_renders_in_chromium(served_app, tmp_path) -> None:
    charts = screenshot_page(served_app, "inductive_bias", "Inductive bias", "text=4 · Similarity to the clean",
                             tmp_path / "inductive_bias.png", 3000, click="Run (", charts=4,
                             fill={"Images per class": "12", "K (folds)": "2"})
    assert charts == 4


@pytest.mark.slow
def test_lab_page_trains_and_renders_in_chromium(served_app, tmp_path) -> None:
    charts = screenshot_page(served_app, "lab", "Objective lab", "text=All selected objectives are trained",
                             tmp_path / "lab.png", 1800, click="Train", charts=3,
                             fill={"Epochs": "1", "Images (0 = all)": "32", "Image size": "32"})
    assert charts >= 3  # the loss curves, then the learning dynamics: a figure per measure, the map and distances


def _settled(page) -> None:
    """Wait for the rerun a widget change starts (it begins a moment after the event), then for its end."""
    page.wait_for_timeout(800)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=120_000)


def _sidebar_values(page) -> dict[str, str]:
    """What the sidebar shows: dataset, path, encoder chips, layer chips of EfficientNet, pooling, batch size and
    the paradigm filter."""
    sidebar = page.locator("[data-testid='stSidebar']")
    page.wait_for_selector("[data-testid='stSidebar'] [data-testid='stNumberInput']", timeout=120_000)

    def widget(kind: str, label: str) -> str:
        return sidebar.locator(f"[data-testid='{kind}']").filter(has_text=label).first.inner_text()

    def selected(label: str) -> str:  # a selectbox shows its value in its combobox input
        return sidebar.locator("[data-testid='stSelectbox']").filter(has_text=label).locator("input").input_value()

    path = sidebar.get_by_role("textbox", name="Path")
    return {"dataset": selected("Dataset"), "path": path.input_value() if path.count() else "(no path field)",
            "encoders": widget("stMultiSelect", "Encoders"),
            "layers": widget("stMultiSelect", "Layers of EfficientNet-Lite0"),
            "pooling": selected("Pooling of block outputs"),
            "batch_size": sidebar.get_by_role("spinbutton", name="Batch size").input_value(),
            "paradigms": ", ".join(sidebar.locator("button[data-variant='pills'][aria-pressed='true']").all_inner_texts())}


def _check_choices(values: dict[str, str], folder: Path, where: str, batch_size: bool = True) -> None:
    assert "Image folder" in values["dataset"], (where, values)
    assert values["path"] == str(folder), (where, values)
    assert "untrained:timm:resnet18" in values["encoders"], (where, values)
    assert "EfficientNet-Lite0" in values["encoders"] and "Raw pixels" not in values["encoders"], (where, values)
    assert "blocks.3" in values["layers"] and "final" in values["layers"], (where, values)
    assert values["pooling"] == "mean", (where, values["pooling"])
    if batch_size:  # and the paradigm filter: session state, not in the URL
        assert values["paradigms"] == "CLIP", (where, values["paradigms"])
        assert values["batch_size"] == "16", (where, values)


@contextmanager
def features_page(base_url: str):
    """A headless Chromium tab on the served app's Features page, its first run ended."""
    with browser_page(base_url, 1400) as page:
        page.wait_for_selector("h1:has-text('Features')", timeout=180_000)
        _settled(page)
        yield page


@pytest.mark.slow
def test_sidebar_choices_survive_every_page_switch_and_a_reload(served_app, isolated_cache, tmp_path) -> None:
    """Issue 15: every page drew its own sidebar and a page switch reset it (dataset back to the demo)."""
    folder = tmp_path / "two_categories"
    for index, image in enumerate(sorted((isolated_cache / "demo" / "images").glob("*.jpg"))[:8]):
        (folder / f"class_{index % 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(image, folder / f"class_{index % 2}" / image.name)
    pages = ["Affect", "Layer probes", "Alignment", "Similarity", "Manifolds", "Inductive bias", "Objective lab",
             "Studies", "Features"]
    with features_page(served_app) as page:
        sidebar = page.locator("[data-testid='stSidebar']")
        sidebar.locator("[data-testid='stSelectbox']").filter(has_text="Dataset").click()
        page.get_by_role("option", name="Image folder (one sub-folder per category)").click()
        _settled(page)
        path = sidebar.get_by_role("textbox", name="Path")
        path.fill(str(folder))
        path.press("Enter")
        _settled(page)
        spec = sidebar.get_by_role("textbox", name="Add an encoder by spec")
        spec.fill("untrained:timm:resnet18")
        sidebar.get_by_role("button", name="Add", exact=True).click()
        _settled(page)
        encoders = sidebar.locator("[data-testid='stMultiSelect']").filter(has_text="Encoders")
        encoders.get_by_role("button", name="Remove ✓ Raw pixels 32x32 · control").click()
        _settled(page)
        sidebar.get_by_role("button", name="CLIP", exact=True).click()  # a paradigm pill: the catalogue filter
        _settled(page)
        sidebar.locator("[data-testid='stMultiSelect']").filter(has_text="Layers of EfficientNet-Lite0").locator("input").click()
        page.wait_for_timeout(500)
        if not page.get_by_role("option").count():  # the click only focused it (as the pooling box below): a key opens
            page.keyboard.press("ArrowDown")
        page.get_by_role("option", name="blocks.3", exact=True).click()
        page.keyboard.press("Escape")
        _settled(page)
        sidebar.locator("[data-testid='stSelectbox']").filter(has_text="Pooling of block outputs").locator("input").click()
        page.keyboard.press("ArrowDown")  # a click only focuses it here (after the Escape above); the key opens it
        page.get_by_role("option", name="mean", exact=True).click()
        _settled(page)
        batch = sidebar.get_by_role("spinbutton", name="Batch size")
        batch.fill("16")
        batch.press("Enter")
        _settled(page)
        _check_choices(_sidebar_values(page), folder, "Features")
        for title in pages:
            page.locator("[data-testid='stSidebarNav']").get_by_text(title, exact=True).click()
            page.wait_for_selector(f"h1:has-text('{title}')", timeout=180_000)
            _settled(page)
            assert page.locator("[data-testid='stException']").count() == 0, title
            assert page.get_by_text("Session State API").count() == 0, title  # default and state both set
            _check_choices(_sidebar_values(page), folder, title)
            if title == "Layer probes":  # a page's own control is kept too
                folds = page.get_by_role("spinbutton", name="K (folds)")
                folds.fill("3")
                folds.press("Enter")
                _settled(page)
        page.locator("[data-testid='stSidebarNav']").get_by_text("Layer probes", exact=True).click()
        page.wait_for_selector("h1:has-text('Layer probes')", timeout=180_000)
        _settled(page)
        assert page.get_by_role("spinbutton", name="K (folds)").input_value() == "3"
        # A reload is a new session: dataset, encoders (one added by spec too), layers, pooling and the page's
        # settings come back from the URL.
        page.reload()
        page.wait_for_selector("h1:has-text('Layer probes')", timeout=180_000)
        _settled(page)
        _check_choices(_sidebar_values(page), folder, "reload", batch_size=False)
        assert page.get_by_role("spinbutton", name="K (folds)").input_value() == "3"  # the page's own, in the URL
        assert page.get_by_text("Session State API").count() == 0


@pytest.mark.slow
def test_no_progress_bar_outlives_its_extraction(served_app) -> None:
    """Issue 15: a frozen "running: 352/384" bar stayed beside "Everything selected is cached"."""
    with features_page(served_app) as page:
        sidebar = page.locator("[data-testid='stSidebar']")
        sidebar.get_by_role("textbox", name="Add an encoder by spec").fill("pixels:6")  # new to this cache
        sidebar.get_by_role("button", name="Add", exact=True).click()
        _settled(page)
        page.get_by_role("button", name="Extract 1 encoder(s)").click()
        page.get_by_role("button", name="Everything selected is cached").wait_for(timeout=180_000)
        _settled(page)
        page.wait_for_timeout(2500)  # two more ticks of the 1 s progress fragment
        assert page.locator("[data-testid='stProgress']").count() == 0


@pytest.mark.slow
def test_a_study_result_opens_on_its_page_in_chromium(served_app, isolated_cache, tmp_path) -> None:
    """Issue 19: a result a headless study stored opens on its page, settings selected, drawn without a job."""
    from core.features.results import ResultStore
    from core.studies.run import STEP_KIND
    from tests.studies import run_tiny_alignment_study

    status = run_tiny_alignment_study(tmp_path, isolated_cache, eps_range=(1e-2, 1e-1))
    top1 = ResultStore(isolated_cache / "results").get(STEP_KIND, status.key).table("matching")["top-1"].iloc[0]
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1500, "height": 3000})
        page.goto(f"{served_app}/studies")
        page.wait_for_selector("h1:has-text('Studies')", timeout=180_000)
        _settled(page)
        page.locator("[data-testid='stSelectbox']").filter(has_text="Result").locator("input").click()
        page.get_by_role("option", name="1. alignment · demo · study_step").first.click()
        _settled(page)
        page.get_by_role("button", name="Open on its page").click()
        page.wait_for_selector("h1:has-text('Alignment')", timeout=180_000)
        _settled(page)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 5", timeout=120_000)
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.get_by_role("button", name="Run alignment").is_disabled(), "stored: nothing to run"
        assert page.locator("[data-testid='stProgress']").count() == 0, "no job was started"
        assert float(_metric(page, "Top-1 matching").rstrip("%")) == pytest.approx(100 * top1, abs=0.05)
        assert "pixels:32 · final" in page.locator("[data-testid='stSelectbox']").filter(
            has_text="Target").first.locator("input").input_value()
        browser.close()
