"""`openlid bench`: Openlid measured against references in one run, reported as ratios.

`engine` (the engine vs the bare llama-cpp-python loop in `desktop.engine.reference_loop`),
`draft` (speculative decoding on and off), `download` (Openlid's download path vs a
plain GET from the local file server in `download_server`). Benchmarks sit above the product
layers they measure and import neither Qt nor inference libraries (the GUI benchmarks are
`desktop.ui.bench`, run in their own process); nothing in the product imports them except the
CLI's `bench` verb."""
