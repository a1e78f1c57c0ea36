"""The chart dock's exports of one step: CSV, JSON (from `core.token_text`) or the chart as PNG.
GUI thread (the PNG is rendered from the chart's scene; the file dialog is modal)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from desktop.core.steps import StepRecord
from desktop.core.token_text import step_csv, step_json
from desktop.ui.chart.distribution_chart import DistributionChart

FILTERS = {"csv": "CSV (*.csv)", "json": "JSON (*.json)", "png": "PNG image (*.png)"}


def write_export(kind: str, path: str | Path, record: StepRecord | None,
                 chart: DistributionChart) -> None:
    """Write `record` (csv, json) or what the chart draws (png) to `path`."""
    if kind == "png":
        from pyqtgraph.exporters import ImageExporter

        ImageExporter(chart.getPlotItem()).export(str(path))
    elif record is not None:
        text = step_csv(record) if kind == "csv" else step_json(record)
        Path(path).write_text(text, encoding="utf-8")


def ask_and_export(parent: QWidget, kind: str, record: StepRecord | None,
                   chart: DistributionChart) -> None:
    """Ask where to save, then write (nothing when no step is shown or the person cancels)."""
    if record is None:
        return
    name = f"step-{record.step}{'-replay' if record.replayed else ''}.{kind}"
    path, _ = QFileDialog.getSaveFileName(parent, "Export step", str(Path.home() / name),
                                          FILTERS[kind])
    if path:
        write_export(kind, path, record, chart)
