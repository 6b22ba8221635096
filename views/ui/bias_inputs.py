"""The Inductive bias page's corruption widgets: the Quick / Full presets and each selected family's levels."""
from __future__ import annotations

import streamlit as st

from core.analyses.inductive_bias import BIAS_PRESETS, BiasPreset
from core.data.corruptions import FAMILIES, FAMILY_LABELS
from core.studies.analyses.inductive_bias import GAMMAS, GRID_SIZES
from views.ui.presets import preset_buttons
from views.ui.settings import in_url


def preset_state(preset: BiasPreset) -> dict:
    """The widget values a preset sets, by session-state key (the levels of every family, selected or not)."""
    return {"inductive_bias.images_per_class": preset.per_class, "inductive_bias.families": list(preset.families),
            "inductive_bias.n_splits": preset.n_splits,
            **{f"inductive_bias.levels.{family}": list(preset.levels[family]) for family in FAMILIES}}


def levels_text(preset: BiasPreset) -> str:
    return "; ".join(f"{family} {', '.join(f'{level:g}' for level in preset.levels[family])}"
                     for family in preset.families)


def corruption_presets() -> None:
    """The Quick and Full buttons (Quick holds the widgets' defaults)."""
    preset_buttons("inductive_bias", {
        name.lower(): (f"{name}: {preset.per_class} per class, {levels_text(preset)}", preset_state(preset),
                       f"Sets images per class, corruptions, their levels and K to the {name.lower()} setting "
                       f"({purpose}); other widgets keep their values.")
        for name, preset, purpose in (("Quick", BIAS_PRESETS["quick"], "about a minute on the demo, two CPU cores"),
                                      ("Full", BIAS_PRESETS["full"], "Zhong et al.'s grid sizes N = 2, 4, 8"))})


def level_inputs(families: list[str]) -> dict[str, list[float]]:
    """A levels multiselect per selected family (keys `inductive_bias.levels.<family>`): {family: levels}."""
    levels = {}
    for column, family in zip(st.columns(len(FAMILIES)), FAMILIES):
        if family in families:
            levels[family] = column.multiselect(
                f"{FAMILY_LABELS[family]} levels", GAMMAS if family == "gamma" else GRID_SIZES,
                **in_url(f"inductive_bias.levels.{family}", default=list(BIAS_PRESETS["quick"].levels[family])),
                help="Gamma exponents g (< 1 brightens, > 1 darkens)." if family == "gamma" else
                     "Grid sizes N. Level 1 is the clean image, drawn as every curve's first point.")
    return levels
