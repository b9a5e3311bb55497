"""Moved to :mod:`udaseg.reporting.report`; this re-export goes in the next release."""
from udaseg.reporting.report import *  # noqa: F401,F403

# explicitly, private helpers included: every name this module defined before the move
from udaseg.reporting.report import (  # noqa: F401
    _PROTO_ORDER, RunInfo, _pct, _protocol_keys, iou_table_html, _diff_cell, diff_table_html,
    fractions_table_html, runs_table_html, _run_colours, bar_chart_png, _smooth, _series,
    _NOT_LOSSES, _curve_keys, curves_png, pick_indices, legend_html, grid_html, render_html,
)
# moved on again: the page parts to reporting/page.py, what loads and runs models to apps/report_runs.py
from udaseg.apps.report_runs import grid_predictions, load_run, write_report  # noqa: F401,E402
from udaseg.reporting.page import CSS as _CSS, fig_png as _fig_png, figure as _figure, img_tag as _img_tag  # noqa: F401,E402
