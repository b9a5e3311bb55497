"""Moved to :mod:`udaseg.apps.ablation`; this re-export goes in the next release."""
from udaseg.apps.ablation import *  # noqa: F401,F403

# explicitly, private helpers included: every name this module defined before the move
from udaseg.apps.ablation import (  # noqa: F401
    ADAPTATION, PAPER_ORDER, LABELS, THIN, parse_probe, run_ablation, evaluate_checkpoint, summarise, ROW_ORDER, row_names,
    row_label, SUMMARY_COLUMNS, summary_cells, format_markdown,
)

_evaluate = evaluate_checkpoint  # its name before it became public
