"""scipy reference of the ``hd95`` metric (the TypeScript one is plugins/hd95/src/hd95.ts): medpy-style HD95,
binary_erosion surfaces and distance_transform_edt with the voxel spacing as sampling."""

from __future__ import annotations

import numpy as np

from llmed.metrics_ref import array_sampling, chosen_labels, input_spacing, label_map, label_result, per_label_surface_distances


def hd95(fixed, warped, labels, spacing, crop: bool = True) -> dict:
    """95th percentile (numpy linear) of the pooled symmetric surface distances, in mm; NaN when a label is
    empty in either map. ``crop=False`` runs the transforms on the whole volume (bench/metrics times both)."""
    return per_label_surface_distances(fixed, warped, labels, array_sampling(spacing), lambda ab, ba: np.percentile(np.concatenate([ab, ba]), 95), crop)


def reference(options: dict, inputs: dict, crop: bool = True) -> dict[str, float]:
    fixed, warped = label_map(inputs["fixedLabels"]), label_map(inputs["warpedLabels"])
    return label_result(hd95(fixed, warped, chosen_labels(options, inputs, fixed, warped), input_spacing(inputs), crop))
