"""numpy reference of the ``jacobian-negative`` metric (TypeScript: plugins/jacobian-negative/src/folding.ts)."""

from __future__ import annotations

import numpy as np

from llmed.metrics_ref import jacobian_determinant, vector_field


def reference(options: dict, inputs: dict) -> dict[str, float]:
    """100 · #{det J < 0} / #voxels, np.gradient determinant."""
    det = jacobian_determinant(vector_field(inputs["field"]))
    return {"value": float(100.0 * np.count_nonzero(det < 0) / det.size)}
