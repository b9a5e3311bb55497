"""The embedded synthetic→"real" benchmark: a procedural street-scene generator (``scene`` and its
modules) and the writer that puts its scenes on disk in the GTA5, SYNTHIA and Cityscapes formats
(``writer``). It uses the library (:mod:`udaseg.data.labels`); the library never imports it.

    from udaseg.benchmark.writer import write_demo, demo_is_complete
    from udaseg.benchmark.scene import render_scene, SOURCE, TARGET
"""
