"""The applications: the ``udaseg`` command line (``cli``, ``cli_eval``), the demo job
(``pipeline``), the ablation runner (``ablation``) and ``udaseg predict`` (``predict``). They use
the library, the benchmark and the reporting; nothing in the library imports them."""
