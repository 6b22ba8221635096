"""Figures as a way into the items: read clicks and box/lasso selections, show an item's thumbnail, metadata,
ratings and nearest neighbours in each representation.

Convention: a clickable figure puts the item's row (its position in the dataset) first in every point's
`customdata`; `selected_rows` reads it back from Streamlit's selection event.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
import streamlit as st

from core.analyses.explore import nearest_neighbours
from core.data.datasets import AFFECT_COLUMNS, ImageSet
from core.data.thumbnails import ThumbnailStore, data_url
from core.paths import cache_root

SELECT_MODES = ("points", "box", "lasso")
PANEL_COLUMNS = 6  # thumbnails per row of a neighbour grid


@st.cache_resource
def thumbnail_store() -> ThumbnailStore:
    """Thumbnails of every dataset, made on first view (or all at once by `ThumbnailStore.build`)."""
    return ThumbnailStore(cache_root() / "thumbnails")


def thumbnail(image_set: ImageSet, row: int) -> bytes | None:
    """The item's JPEG thumbnail, or None (no images, unreadable file)."""
    return thumbnail_store().get(image_set, row)


def thumbnail_urls(image_set: ImageSet, rows) -> list[str | None]:
    """Data URLs of the items' thumbnails, for `st.column_config.ImageColumn` (None where there is none)."""
    return [data_url(thumbnail(image_set, int(row))) for row in rows]


def selected_rows(event: Any, n_items: int | None = None) -> list[int]:
    """The item rows (customdata[0]) of the points a Streamlit plotly selection event holds, in event order.

    With `n_items`, rows outside 0..n_items-1 are dropped: a chart's selection survives reruns, so a click made
    on another dataset or subset can arrive with rows this one does not have."""
    selection = (event or {}).get("selection") or {}
    rows = []
    for point in selection.get("points") or ():
        custom = point.get("customdata")
        if custom is None:
            continue
        # A numeric numpy customdata reaches the browser as a typed array, and comes back as {"0": row, ...}.
        value = custom.get("0") if isinstance(custom, dict) else custom[0] if isinstance(custom, (list, tuple)) \
            else custom
        try:
            rows.append(int(value))
        except (TypeError, ValueError):
            continue
    return [row for row in dict.fromkeys(rows) if n_items is None or 0 <= row < n_items]


def item_options(image_set: ImageSet) -> dict[int, str]:
    """row -> "image_id · category" for a searchable select box of the dataset's items."""
    metadata = image_set.metadata
    return {row: f"{item} · {category}" for row, (item, category) in
            enumerate(zip(metadata["image_id"].astype(str), metadata["category"].astype(str)))}


def item_header(image_set: ImageSet, row: int, *, predicted: Mapping[str, np.ndarray] | None = None) -> None:
    """The item's thumbnail beside its metadata, with true and predicted ratings when there are any."""
    metadata = image_set.metadata.iloc[int(row)]
    picture, facts = st.columns([1, 3])
    image = thumbnail(image_set, row)
    if image is not None:
        picture.image(image, caption=str(metadata["image_id"]), width=140)
    else:
        picture.caption("No image" if not image_set.has_images else "Image unreadable")
    shown = {column: value for column, value in metadata.items() if column not in AFFECT_COLUMNS}
    facts.markdown(f"**{metadata['image_id']}** · {metadata['category']}")
    facts.dataframe(pd.DataFrame({"field": list(shown), "value": [str(value) for value in shown.values()]}),
                    hide_index=True, width="stretch")
    if image_set.has_affect:
        ratings = [{"source": "true (human ratings)", "valence": float(metadata["valence"]),
                    "arousal": float(metadata["arousal"])}]
        ratings += [{"source": f"predicted · {label}", "valence": float(values[0]), "arousal": float(values[1])}
                    for label, values in (predicted or {}).items()]
        facts.dataframe(pd.DataFrame(ratings), hide_index=True, width="stretch",
                        column_config={name: st.column_config.NumberColumn(format="%.2f")
                                       for name in ("valence", "arousal")})


def neighbour_grid(image_set: ImageSet, row: int, representations: Mapping[str, np.ndarray], k: int) -> pd.DataFrame:
    """The item's k nearest neighbours (cosine) in each representation as thumbnail grids, side by side for two,
    the neighbours every representation shares marked ★; returns them as a table (representation, rank, row,
    image_id, cosine_distance, shared)."""
    found = {label: nearest_neighbours(features, k, queries=[row]) for label, features in representations.items()}
    shared = set.intersection(*(set(neighbours.indices[0].tolist()) for neighbours in found.values())) \
        if len(found) > 1 else set()
    ids = image_set.metadata["image_id"].astype(str).to_numpy()
    panels = st.columns(len(found)) if len(found) == 2 else [st.container() for _ in found]
    per_row = PANEL_COLUMNS // len(panels) if len(found) == 2 else PANEL_COLUMNS
    records = []
    for panel, (label, neighbours) in zip(panels, found.items()):
        panel.markdown(f"**{label}** · {neighbours.indices.shape[1]} nearest by cosine"
                       + (f" · ★ = shared by all {len(found)} ({len(shared)})" if len(found) > 1 else ""))
        cells = panel.columns(per_row)
        for rank, (neighbour, distance) in enumerate(zip(neighbours.indices[0], neighbours.distances[0]), 1):
            caption = f"{'★ ' if int(neighbour) in shared else ''}{rank}. {ids[neighbour]} · d {distance:.3f}"
            cell = cells[(rank - 1) % per_row]
            image = thumbnail(image_set, int(neighbour))
            if image is not None:
                cell.image(image, caption=caption, width="stretch")
            else:
                cell.caption(caption)
            records.append({"representation": label, "rank": rank, "row": int(neighbour), "image_id": ids[neighbour],
                            "cosine_distance": float(distance), "shared": int(neighbour) in shared})
    return pd.DataFrame(records)


def item_panel(image_set: ImageSet, row: int, representations: Mapping[str, np.ndarray], *, k: int = 6,
               predicted: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """An item's card: thumbnail, metadata, ratings, and its neighbours in each representation (see
    `neighbour_grid`)."""
    with st.container(border=True):
        item_header(image_set, row, predicted=predicted)
        return neighbour_grid(image_set, row, representations, k) if representations else pd.DataFrame()
