"""Qt widgets, item models and the chart: the only package that imports PySide6 or pyqtgraph."""
