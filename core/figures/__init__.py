"""Plotly figures: `style` (house style, palettes) and one module per page; every figure has a matching `*_table`."""
