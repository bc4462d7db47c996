"""Reference of the ``l2r-hd95`` metric: Learn2Reg's evaluation ``compute_hd95`` over DeepMind's
surface-distance package itself (PyPI ``surface-distance``, pinned in bridge/python/requirements.txt), and
of the voxel-boundary variant it replaced (scipy). The TypeScript ones are plugins/l2r-hd95/src/l2r-hd95.ts."""

from __future__ import annotations

import numpy as np

from llmed.metrics_ref import chosen_labels, label_map, label_result, per_label_surface_distances


def _surface_distance_package():
    """The package Learn2Reg's evaluation calls. Its 2018 source uses ``np.bool`` / ``np.Inf``, which numpy 2
    removed: give them back before importing it."""
    if not hasattr(np, "bool"):
        np.bool = np.bool_
    if not hasattr(np, "Inf"):
        np.Inf = np.inf
    import surface_distance  # noqa: PLC0415 (a test dependency, imported only when a reference runs)

    return surface_distance


def l2r_hd95(fixed, moving, warped, labels) -> dict:
    """``compute_hd95(fixed, moving, moving_warped, labels)``: NaN when the label is missing from the fixed or
    the unwarped moving map, else the robust Hausdorff at 95 % with spacing ones."""
    sd = _surface_distance_package()
    out = {}
    for label in labels:
        if (fixed == label).sum() == 0 or (moving == label).sum() == 0:
            out[str(label)] = float("nan")
            continue
        dist = sd.compute_surface_distances(fixed == label, warped == label, np.ones(3))
        out[str(label)] = float(sd.compute_robust_hausdorff(dist, 95.0))
    return out


def reference(options: dict, inputs: dict) -> dict[str, float]:
    fixed, warped = label_map(inputs["fixedLabels"]), label_map(inputs["warpedLabels"])
    moving = label_map(inputs["movingLabels"]) if inputs.get("movingLabels") is not None else warped
    return label_result(l2r_hd95(fixed, moving, warped, chosen_labels(options, inputs, fixed, warped)))


def _robust_percentile(distances: np.ndarray, percent: float) -> float:
    """surface-distance's percentile with every surface element weighted equally."""
    d = np.sort(distances)
    cumulative = np.cumsum(np.ones_like(d)) / len(d)
    idx = np.searchsorted(cumulative, percent / 100.0)
    return float(d[min(idx, len(d) - 1)])


def voxel_boundary_hd95(fixed, warped, labels, crop: bool = True) -> dict:
    """``voxelBoundaryHd95``: max of the two directed 95th percentiles over 6-connectivity surface voxels with
    equal weights, spacing 1 (what l2r-hd95 computed before it matched Learn2Reg)."""
    return per_label_surface_distances(fixed, warped, labels, (1.0, 1.0, 1.0), lambda ab, ba: max(_robust_percentile(ab, 95.0), _robust_percentile(ba, 95.0)), crop)


def voxel_boundary_reference(options: dict, inputs: dict) -> dict[str, float]:
    fixed, warped = label_map(inputs["fixedLabels"]), label_map(inputs["warpedLabels"])
    return label_result(voxel_boundary_hd95(fixed, warped, chosen_labels(options, inputs, fixed, warped)))
