"""numpy reference of the ``endpoint-error`` metric (TypeScript: plugins/endpoint-error/src/endpoint-error.ts)."""

from __future__ import annotations

import numpy as np

from llmed.metrics_ref import input_spacing, label_map, vector_field


def endpoint_error(field: np.ndarray, truth: np.ndarray, spacing, mask: np.ndarray | None = None) -> float:
    """Mean over the mask (or every voxel) of the Euclidean norm, in mm, of the field error per voxel."""
    scale = np.asarray(spacing, dtype=np.float64).reshape(3, 1, 1, 1)  # channel c is NIfTI axis c
    norm = np.linalg.norm((field - truth) * scale, axis=0)
    values = norm[mask != 0] if mask is not None else norm.ravel()
    return float(values.mean()) if values.size else float("nan")


def reference(options: dict, inputs: dict) -> dict[str, float]:
    """``region`` 'foreground': inside the fixed labels when the pair has them; 'all': every voxel."""
    use_mask = options["region"] == "foreground" and inputs.get("fixedLabels") is not None
    mask = label_map(inputs["fixedLabels"]) if use_mask else None
    return {"value": endpoint_error(vector_field(inputs["field"]), vector_field(inputs["groundTruthField"]), input_spacing(inputs), mask)}
