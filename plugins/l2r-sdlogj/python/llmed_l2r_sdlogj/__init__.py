"""numpy reference of the ``l2r-sdlogj`` metric (the TypeScript one is plugins/l2r-sdlogj/src/l2r-sdlogj.ts),
computed the Learn2Reg evaluation's way."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from llmed.metrics_ref import determinant3, jacobian_determinant, vector_field


def l2r_jacobian_determinant(field: np.ndarray, crop: int = 2) -> np.ndarray:
    """Learn2Reg's determinant: zero-padded [-0.5, 0, 0.5] correlation, cropped ``crop`` voxels per face (its
    code crops 2). Inside one voxel from the faces it equals np.gradient's central differences."""
    u = field.astype(np.float64)
    kernel = np.array([-0.5, 0.0, 0.5])
    J = np.empty((3, 3) + u.shape[1:])
    for c in range(3):
        for a in range(3):
            J[c, a] = ndimage.correlate1d(u[c], kernel, axis=2 - a, mode="constant", cval=0.0) + (1.0 if c == a else 0.0)
    inner = (slice(None), slice(None)) + tuple(slice(crop, n - crop) for n in u.shape[1:])
    return determinant3(J[inner])


def reference(options: dict, inputs: dict) -> dict[str, float]:
    """std(log(clip(det J + 3, 1e-9, 1e9))) over the voxels at least ``crop`` from every face. With crop 0 the
    border voxels need np.gradient's one-sided differences (llmed's determinant), which Learn2Reg never uses."""
    field = vector_field(inputs["field"])
    crop = int(options["crop"])
    det = l2r_jacobian_determinant(field, crop) if crop >= 1 else jacobian_determinant(field)
    return {"value": float(np.log(np.clip(det + 3, 1e-9, 1e9)).std()) if det.size else float("nan")}
