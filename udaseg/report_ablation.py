"""Moved to :mod:`udaseg.reporting.report_ablation`; this re-export goes in the next release."""
from udaseg.reporting.report_ablation import *  # noqa: F401,F403

# explicitly, private helpers included: every name this module defined before the move
from udaseg.reporting.report_ablation import (  # noqa: F401
    _RUN_KEYS, is_ablation_results, load_ablation, _num, summary_table_html, _class_table, miou_chart_png,
    render_ablation_html, write_ablation_report,
)
