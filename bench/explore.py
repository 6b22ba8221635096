"""Explore at scale: a 10,000-point map, a box selection to its linked table and highlights, a click to its
neighbours, and OASIS thumbnails.

    .venv/bin/python bench/explore.py [--quick] [--items 10000] [--dim 512]

Random features (N × d, 20 categories, seed 0) stand in for an encoder layer; the work per event does not
depend on what the features mean. Each row prints seconds and a ratio against a baseline measured in the
same run:
- map: building the WebGL (Scattergl) map and serialising it as Streamlit does (`fig.to_json()`), against
  the same points as an SVG `go.Scatter` figure; then (where Chromium and Playwright are installed) drawing it
  in headless Chromium (`Plotly.newPlot` until the next frame) for 10,000 and 50,000 items, against the same
  figure with its traces drawn as SVG;
- selection: from a box-selection event (a quarter of the map) to the linked table (metadata, ρ, k-NN
  overlap, the first 200 thumbnails' URLs) and the other map redrawn with the items highlighted, against
  redrawing that map without highlights (a plain rerun). Target: < 1 s;
- click: the clicked item's k neighbours in two representations, against the per-item agreement of all
  items (computed once per pair and cached by the page);
- thumbnails (needs ../shared/data/oasis): ThumbnailStore.build on the 900 OASIS images with JPEG draft
  decoding on 1 and 2 threads, against full-size decoding on one thread; images/s.

`--quick` (a check that the bench runs, in seconds; its ratios mean little): 300 items x 32 dimensions, the browser
draw at 300 items once each, thumbnails of 32 demo images (generated in a temporary REPSCOPE_CACHE) instead of OASIS.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.analyses.explore import embedding_map, item_agreement, nearest_neighbours  # noqa: E402
from core.data.datasets import demo, oasis  # noqa: E402
from core.data.thumbnails import ThumbnailStore, data_url  # noqa: E402
from core.figures.explore import map_figure  # noqa: E402
from core.paths import cache_root, temporary_cache  # noqa: E402

OASIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "oasis"
THUMBNAILS_IN_TABLE = 200  # the page shows thumbnails for the first 200 selected rows


def timed(function):
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def row(name: str, seconds: float, baseline: float, note: str = "") -> None:
    print(f"{name:<44} {seconds:8.3f} s   baseline {baseline:8.3f} s   ratio {seconds / baseline:7.2f}   {note}")


def points_table(xy: np.ndarray, categories: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "row": np.arange(len(xy)),
                         "image_id": [f"item_{index:05d}" for index in range(len(xy))], "category": categories})


def box_event(points: pd.DataFrame) -> dict:
    """What Streamlit hands the page after a box selection of the lower-left quarter of the map."""
    inside = points[(points["x"] < points["x"].median()) & (points["y"] < points["y"].median())]
    return {"selection": {"points": [{"x": x, "y": y, "customdata": [int(item), item_id]} for x, y, item, item_id in
                                     inside[["x", "y", "row", "image_id"]].itertuples(index=False)],
                          "point_indices": inside["row"].tolist(), "box": [{}], "lasso": []}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="300 items, 32 dimensions, 32 demo thumbnails: checks that the bench runs")
    parser.add_argument("--items", type=int, default=None, help="default 10000 (quick 300)")
    parser.add_argument("--dim", type=int, default=None, help="default 512 (quick 32)")
    args = parser.parse_args()
    args.items, args.dim = args.items or (300 if args.quick else 10_000), args.dim or (32 if args.quick else 512)
    with temporary_cache(args.quick):  # quick: the demo is generated into a temporary cache, not cache/
        run(args)


def run(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    first = rng.normal(size=(args.items, args.dim)).astype(np.float32)
    second = first + rng.normal(size=first.shape).astype(np.float32)
    categories = np.array([f"category_{index % 20:02d}" for index in range(args.items)])
    print(f"{args.items} items × {args.dim} dimensions, 20 categories")

    seconds, xy = timed(lambda: embedding_map(first, "PCA"))
    print(f"{'PCA map (once per features, stored)':<44} {seconds:8.3f} s")
    points = points_table(xy, categories)
    svg, _ = timed(lambda: go.Figure(go.Scatter(x=points["x"], y=points["y"], mode="markers",
                                                customdata=points[["row"]])).to_json())
    webgl, payload = timed(lambda: map_figure(points, "category", "A").to_json())
    row("map: build + serialise (Scattergl)", webgl, svg, f"{len(payload) / 1e6:.1f} MB of JSON")
    browser_draw_times(categories, sizes=(300,) if args.quick else (10_000, 50_000), repeats=1 if args.quick else 3)

    with tempfile.TemporaryDirectory() as folder:
        if args.quick:
            images, source = demo(cache_root()).subset(range(32)), "demo (32)"
        else:
            images, source = oasis(OASIS) if OASIS.is_dir() else None, "OASIS"
        thumbnails = ThumbnailStore(folder)
        if images is None:
            print(f"thumbnails: skipped ({OASIS} not found); the selection table below has none")
        else:
            full, _ = timed(lambda: [_full_decode_thumbnail(path) for path in images.paths])
            for workers in (1, 2):
                thumbnails = ThumbnailStore(Path(folder) / f"threads_{workers}")  # the selection reads the last
                built, count = timed(lambda: thumbnails.build(images, workers=workers))
                row(f"thumbnails: {source}, draft decoding, {workers} thread(s)", built, full,
                    f"{count / built:.0f} images/s (baseline: full decode, 1 thread, {len(images) / full:.0f} images/s)")
        selection_table_and_click(first, second, points, thumbnails, images)


def selection_table_and_click(first, second, points, thumbnails, images) -> None:
    """Time a box selection's linked table and highlights, and a click's neighbours."""
    agreement_seconds, agreement = timed(lambda: item_agreement(first, second, k=10))
    event = box_event(points)
    plain, _ = timed(lambda: map_figure(points, "category", "B").to_json())

    def selection_update():
        from views.ui.items import selected_rows  # the page's reader of selection events
        rows = selected_rows(event)
        table = points.iloc[rows][["image_id", "category"]].assign(
            rdm_row_spearman=agreement["rdm_row_spearman"].to_numpy()[rows],
            knn_overlap=agreement["knn_overlap"].to_numpy()[rows])
        shown = rows[:THUMBNAILS_IN_TABLE]  # random items have no images: OASIS thumbnails stand in, read from disk
        table["thumbnail"] = [data_url(thumbnails.get(images, item % len(images))) for item in shown] + \
            [None] * (len(rows) - len(shown)) if images is not None else None
        return len(rows), table, map_figure(points, "category", "B", highlighted_rows=rows).to_json()

    update, (selected, _, _) = timed(selection_update)
    row("selection -> table + highlighted map", update, plain,
        f"{selected} items selected; target < 1 s: {'met' if update < 1 else 'MISSED'}")
    click, _ = timed(lambda: [nearest_neighbours(features, 10, queries=[123]) for features in (first, second)])
    row("click -> 10 neighbours in 2 representations", click, agreement_seconds,
        "baseline: per-item agreement of all items (once per pair, cached)")


DRAW_JS = """async (figure) => {
    const plot = document.getElementById("plot");
    Plotly.purge(plot);
    const start = performance.now();
    await Plotly.newPlot(plot, figure.data, figure.layout);
    await new Promise((resolve) => requestAnimationFrame(() => resolve()));
    return (performance.now() - start) / 1000;
}"""


def browser_draw_times(categories: np.ndarray, sizes=(10_000, 50_000), repeats: int = 3) -> None:
    """Seconds to draw the map in headless Chromium, WebGL against the same traces as SVG (best of `repeats`)."""
    from core.export import find_chromium
    chromium = find_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        print("browser draw: skipped (needs Chromium and playwright)")
        return
    plotly_js = Path(go.__file__).resolve().parents[1] / "package_data" / "plotly.min.js"
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        harness = Path(folder) / "draw.html"
        harness.write_text(f'<html><body><script src="{plotly_js.as_uri()}"></script>'
                           '<div id="plot" style="width:700px;height:520px"></div></body></html>')
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(harness.as_uri())
        for items in sizes:
            rng = np.random.default_rng(items)
            labels = np.resize(categories, items)
            points = points_table(rng.normal(size=(items, 2)), labels)
            webgl_figure = map_figure(points, "category", "A")
            svg_figure = go.Figure(webgl_figure)
            svg_figure.data = []
            for trace in webgl_figure.data:
                svg_figure.add_trace(go.Scatter(trace.to_plotly_json() | {"type": "scatter"}))
            webgl = min(page.evaluate(DRAW_JS, json.loads(webgl_figure.to_json())) for _ in range(repeats))
            svg = min(page.evaluate(DRAW_JS, json.loads(svg_figure.to_json())) for _ in range(repeats))
            row(f"browser draw: {items} items (WebGL vs SVG)", webgl, svg, f"best of {repeats}, headless Chromium")
        browser.close()


def _full_decode_thumbnail(path: Path) -> bytes:
    """The baseline: decode the full image, then shrink (what make_thumbnail does without JPEG draft mode)."""
    import io

    from core.data.images import load_image
    image = load_image(path)
    image.thumbnail((96, 96))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85, optimize=True)
    return buffer.getvalue()


if __name__ == "__main__":
    main()
