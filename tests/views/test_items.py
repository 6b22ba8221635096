"""Reading Streamlit's plotly selection events: the item row is customdata[0], whatever form it arrives in."""
from views.ui.items import selected_rows


def test_selected_rows_read_lists_typed_array_dicts_and_skip_points_without_rows():
    event = {"selection": {"points": [{"customdata": [4, "a"]}, {"customdata": {"0": 7, "1": 2}},
                                      {"customdata": 9}, {"x": 1}, {"customdata": [4, "again"]}]}}
    assert selected_rows(event) == [4, 7, 9]
    assert selected_rows(None) == [] and selected_rows({"selection": {}}) == []


def test_rows_outside_the_items_are_dropped():
    event = {"selection": {"points": [{"customdata": [3]}, {"customdata": [12]}, {"customdata": [-1]}]}}
    assert selected_rows(event, n_items=10) == [3]
