"""Presentation: the HTML run report (``report``), the ablation report (``report_ablation``) and
the picture helpers they and ``udaseg predict`` share (``viz``). Nothing in the library imports it."""
