"""Where the benchmarks live: the GUI ones under desktop.ui.bench (the CLI starts them by module
name in a child process), the bare llama-cpp-python reference loop inside the engine, and
nothing left in desktop.bench that the layer contracts would have to excuse. No Qt is imported
here: module specs and argument parsing only."""

from __future__ import annotations

import importlib
import importlib.util
import inspect

import pytest

from desktop.cli.main import cmd_bench

GUI_BENCHES = ("desktop.ui.bench.chart", "desktop.ui.bench.window", "desktop.ui.bench.whatif")


@pytest.mark.parametrize("module", [*GUI_BENCHES, "desktop.engine.reference_loop"])
def test_each_benchmark_sits_in_the_layer_that_may_import_what_it_needs(module: str) -> None:
    assert importlib.util.find_spec(module) is not None, module


@pytest.mark.parametrize("old", ["chart", "window", "whatif", "reference"])
def test_the_bench_package_holds_no_qt_or_inference_module(old: str) -> None:
    assert importlib.util.find_spec(f"desktop.bench.{old}") is None


def test_the_cli_starts_the_gui_benchmarks_by_their_module_names() -> None:
    source = inspect.getsource(cmd_bench)
    for module in ("desktop.ui.bench.chart", "desktop.ui.bench.window"):
        assert f'"{module}"' in source
    assert "desktop.bench.chart" not in source
    assert "desktop.bench.window" not in source


@pytest.mark.parametrize("module", ["desktop.ui.bench.chart", "desktop.ui.bench.window"])
def test_a_gui_benchmark_parses_its_arguments_before_importing_qt(
        module: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert f"python -m {module}" in capsys.readouterr().out
