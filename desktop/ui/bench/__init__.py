"""The GUI benchmarks of `openlid bench --chart/--ui`: `chart` (tokens/s with the live chart
dock fed and shown, against none), `window` (the real main window's longest event-loop stall
while it streams a reply) and `whatif` (slider to painted replay, run by `window`). Each runs as
`python -m desktop.ui.bench.<name>` in its own process, so the CLI that starts them never imports
Qt; nothing in the product imports them."""
