"""RepScope's library: pure functions and frozen result types; no Streamlit.

The stages, in the order data flows through them:

    core.data       image sets (OASIS, THINGS, folders, the demo), input transforms, corruptions
    core.encoders   encoder spec strings -> EncoderInfo (describe) -> a loaded model (load_encoder)
    core.features   batched multi-layer extraction into the on-disk FeatureStore; ResultCache
    core.analyses   one module per analysis (affect, probes, rdm, gwot, manifolds, ...)
    core.lab        the Objective lab: train small backbones, registered as `lab:<run id>` encoders
    core.figures    plotly figures in one house style, one module per page

    core.jobs (background jobs, ETAs), core.export (file names, CSV/NPY), core.paths (cache root),
    core.cli (`python -m core`).
Definitions: docs/science.md.
"""
