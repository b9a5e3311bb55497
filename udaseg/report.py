"""Moved to :mod:`udaseg.reporting.report`; this re-export goes in the next release."""
from udaseg.reporting.report import *  # noqa: F401,F403

# explicitly, private helpers included: every name this module defined before the move
from udaseg.reporting.report import (  # noqa: F401
    _PROTO_ORDER, RunInfo, load_run, _img_tag, _pct, _protocol_keys, iou_table_html, _diff_cell, diff_table_html,
    fractions_table_html, runs_table_html, _figure, _fig_png, _run_colours, bar_chart_png, _smooth, _series,
    _NOT_LOSSES, _curve_keys, curves_png, pick_indices, grid_predictions, legend_html, grid_html, _CSS, write_report,
    render_html,
)
