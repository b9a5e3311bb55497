"""Moved to :mod:`udaseg.apps.predict`; this re-export goes in the next release."""
from udaseg.apps.predict import *  # noqa: F401,F403

# explicitly, private helpers included: every name this module defined before the move
from udaseg.apps.predict import (  # noqa: F401
    MANIFEST_NAME, GROUND_TRUTH_FOLDERS, UnsafeOutputError, ImageItem, SkippedFile, _reason, collect_images,
    network_size, config_input_size, output_names, looks_like_labels, read_manifest, write_manifest,
    _refuse_ground_truth_tree, previous_outputs, prepare_output, write_outputs, predict_with_model, predict_images,
)
