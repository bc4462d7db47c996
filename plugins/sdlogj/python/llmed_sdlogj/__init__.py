"""numpy reference of the ``sdlogj`` metric (the TypeScript one is plugins/sdlogj/src/sdlogj.ts)."""

from __future__ import annotations

import numpy as np

from llmed.metrics_ref import jacobian_determinant, vector_field


def reference(options: dict, inputs: dict) -> dict[str, float]:
    """Population std of log(det J) over the voxels with det J > 0 (np.gradient determinant); NaN if none."""
    det = jacobian_determinant(vector_field(inputs["field"]))
    positive = det[det > 0]
    return {"value": float(np.log(positive).std()) if positive.size else float("nan")}
