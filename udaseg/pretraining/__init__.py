"""The pretraining set: ImageNet's role for the embedded benchmark (``udaseg pretrain``).

Object-centric classification images of 128 categories, rendered on the fly from (seed, split,
index) — nothing is written to disk. ``images.py`` holds the category table and the dataset;
``objects.py`` the hand-drawn categories (the street classes' objects and others), ``world.py``
the street classes' objects painted by the benchmark world's own object models instead (the
``street_objects: world`` variant), ``formula.py`` the formula-driven ones, ``looks.py``
backgrounds and photographic effects. Design and reasons: ``images.py``'s docstring.
"""
from .images import CATEGORIES, PretrainImages, render

__all__ = ["CATEGORIES", "PretrainImages", "render"]
