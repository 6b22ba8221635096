"""One bundle of stores per cache root, each in its own folder; scores kept beside the results before move once."""
from __future__ import annotations

import pandas as pd

from core.features.results import ResultStore
from core.features.store import ResultCache
from core.stores import Stores


def test_scores_stored_beside_the_results_before_are_moved_once_and_stay_readable(tmp_path) -> None:
    earlier = ResultCache(tmp_path / "results")  # where scores were kept before they had a folder
    earlier.set("digest|affect|loto", [{"target": "valence", "score": 0.25}])
    earlier.set("large", {"values": list(range(20_000))})  # stored in a value file, not in the database
    ResultStore(tmp_path / "results").put("alignment", "k1", {"label": "a"}, tables={"t": pd.DataFrame({"x": [1]})})
    del earlier

    stores = Stores.at(tmp_path)
    assert stores.scores.get("digest|affect|loto") == [{"target": "valence", "score": 0.25}]
    assert stores.scores.get("large")["values"][-1] == 19_999
    assert not (tmp_path / "results" / "cache.db").exists() and (tmp_path / "scores" / "cache.db").is_file()
    assert stores.results.get("alignment", "k1").table("t")["x"].tolist() == [1]  # results left where they were
    stores.scores.set("new", 1)
    again = Stores.at(tmp_path)  # a second open moves nothing and finds both
    assert again.scores.get("new") == 1 and again.scores.get("digest|affect|loto")[0]["score"] == 0.25


def test_each_store_has_its_own_folder(tmp_path) -> None:
    stores = Stores.at(tmp_path)
    folders = {stores.features.root, stores.results.root, tmp_path / "scores", stores.similarity.root}
    assert len(folders) == 4 and all(folder.is_relative_to(tmp_path) for folder in folders)
