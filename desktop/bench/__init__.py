"""`openlid bench`: Openlid measured against references in one run, reported as ratios.

`engine` (the engine vs a bare llama-cpp-python loop in `reference`), `chart` and `window` (the GUI,
each run in its own process so the CLI never imports Qt), `download` (Openlid's download path vs a
plain GET from the local file server in `download_server`). Benchmarks sit above the product
layers they measure; nothing in the product imports them except the CLI's `bench` verb."""
