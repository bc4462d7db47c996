"""Reference implementations of llmed's registration metrics in numpy/scipy, for cross-checks only.

The TypeScript metrics (packages/imaging/src/metrics.ts) are the ones llmed uses; this module is an
independent second implementation built from library routines (``scipy.ndimage.distance_transform_edt``
with ``sampling``, ``binary_erosion``, ``np.gradient``, ``np.percentile``) so the tests can compare
the two on real label maps and fields. It is not imported by the training code.

Command line (used by the tests and by ``bench/metrics``)::

    python metrics_ref.py request.json

``request.json`` names raw little-endian files written by TypeScript (label maps as int32, fields and
determinants as float32, in llmed's layout: i fastest, fields component-major) and says which metric
to compute (or holds a list of such requests); the answer (or the list of answers) is one JSON value on
the last stdout line.

Array layout: a volume of dims [nx, ny, nz] with i fastest is, in numpy C order, an array of shape
(nz, ny, nx); a field is (3, nz, ny, nx) with channel c = displacement along NIfTI axis c. Spacing
[sx, sy, sz] therefore becomes ``sampling=(sz, sy, sx)``.
"""
from __future__ import annotations

import json
import math
import sys
import time

import numpy as np
from scipy import ndimage


def read_volume(path: str, dims, dtype, components: int = 1) -> np.ndarray:
    nx, ny, nz = dims
    data = np.fromfile(path, dtype=np.dtype(dtype).newbyteorder("<"))
    shape = (nz, ny, nx) if components == 1 else (components, nz, ny, nx)
    return data.reshape(shape)


def array_sampling(spacing) -> tuple:
    return (float(spacing[2]), float(spacing[1]), float(spacing[0]))


# ----------------------------------------------------------------------------------------------- Dice
def dice(fixed: np.ndarray, warped: np.ndarray, labels, absent_as: str = "nan") -> dict:
    """2|A∩B| / (|A|+|B|) per label; 0/0 → NaN (or 0 with absent_as='zero')."""
    out = {}
    for label in labels:
        a = fixed == label
        b = warped == label
        denom = int(a.sum()) + int(b.sum())
        if denom == 0:
            out[str(label)] = float("nan") if absent_as == "nan" else 0.0
        else:
            out[str(label)] = 2.0 * int(np.logical_and(a, b).sum()) / denom
    return out


# -------------------------------------------------------------------------------------- surfaces, HD95
_FACE = ndimage.generate_binary_structure(3, 1)


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of the mask with a face neighbour outside it (outside the array counts as outside)."""
    return mask & ~ndimage.binary_erosion(mask, structure=_FACE, iterations=1, border_value=0)


def _crop(a: np.ndarray, b: np.ndarray):
    """Both masks cut to the bounding box of their union plus one voxel (padding keeps erosion honest)."""
    idx = np.nonzero(a | b)
    lo = [max(int(i.min()) - 1, 0) for i in idx]
    hi = [min(int(i.max()) + 2, s) for i, s in zip(idx, a.shape)]
    sl = tuple(slice(l, h) for l, h in zip(lo, hi))
    return a[sl], b[sl]


def directed_surface_distances(a: np.ndarray, b: np.ndarray, sampling, crop: bool = True):
    """(distances from A's surface voxels to B's surface, and back), in the units of ``sampling``."""
    if crop:
        a, b = _crop(a, b)
    sa, sb = surface(a), surface(b)
    dt_b = ndimage.distance_transform_edt(~sb, sampling=sampling)
    dt_a = ndimage.distance_transform_edt(~sa, sampling=sampling)
    return dt_b[sa], dt_a[sb]


def hd95(fixed, warped, labels, spacing, crop: bool = True) -> dict:
    """medpy-style: 95th percentile (numpy linear) of the pooled symmetric surface distances, in mm."""
    out = {}
    sampling = array_sampling(spacing)
    for label in labels:
        a = fixed == label
        b = warped == label
        if not a.any() or not b.any():
            out[str(label)] = float("nan")
            continue
        d_ab, d_ba = directed_surface_distances(a, b, sampling, crop)
        out[str(label)] = float(np.percentile(np.concatenate([d_ab, d_ba]), 95))
    return out


def _robust_percentile(distances: np.ndarray, percent: float) -> float:
    """DeepMind surface-distance's percentile with every surface element weighted equally."""
    d = np.sort(distances)
    weights = np.ones_like(d)
    cumulative = np.cumsum(weights) / np.sum(weights)
    idx = np.searchsorted(cumulative, percent / 100.0)
    return float(d[min(idx, len(d) - 1)])


def voxel_boundary_hd95(fixed, warped, labels, crop: bool = True) -> dict:
    """llmed's `voxelBoundaryHd95`: max of the two directed 95th percentiles over 6-connectivity surface
    voxels with equal weights, spacing 1 (what l2r-hd95 computed before it matched Learn2Reg)."""
    out = {}
    for label in labels:
        a = fixed == label
        b = warped == label
        if not a.any() or not b.any():
            out[str(label)] = float("nan")
            continue
        d_ab, d_ba = directed_surface_distances(a, b, (1.0, 1.0, 1.0), crop)
        out[str(label)] = max(_robust_percentile(d_ab, 95.0), _robust_percentile(d_ba, 95.0))
    return out


def _surface_distance_package():
    """DeepMind's surface-distance (PyPI ``surface-distance``, pinned in requirements.txt), the code Learn2Reg's
    evaluation calls. Its 2018 source uses ``np.bool`` / ``np.Inf``, which numpy 2 removed: give them back."""
    if not hasattr(np, "bool"):
        np.bool = np.bool_
    if not hasattr(np, "Inf"):
        np.Inf = np.inf
    import surface_distance  # noqa: PLC0415 (optional test dependency)

    return surface_distance


def l2r_hd95(fixed, moving, warped, labels) -> dict:
    """Learn2Reg's evaluation ``compute_hd95(fixed, moving, moving_warped, labels)``: NaN when the label is
    missing from the fixed or the unwarped moving map, else the official surface-distance robust Hausdorff
    at 95 % with spacing ones."""
    sd = _surface_distance_package()
    out = {}
    for label in labels:
        if (fixed == label).sum() == 0 or (moving == label).sum() == 0:
            out[str(label)] = float("nan")
            continue
        dist = sd.compute_surface_distances(fixed == label, warped == label, np.ones(3))
        out[str(label)] = float(sd.compute_robust_hausdorff(dist, 95.0))
    return out


# ------------------------------------------------------------------------------------------- Jacobian
def jacobian_determinant(field: np.ndarray, spacing=None) -> np.ndarray:
    """det(I + ∇u) with np.gradient (central inside, one-sided at the borders), field (3, nz, ny, nx).

    J[c][a] = δ_ca + ∂u_c/∂x_a, x_0 = i (array axis 2), x_1 = j (axis 1), x_2 = k (axis 0).
    """
    u = field.astype(np.float64)
    steps = array_sampling(spacing) if spacing is not None else (1.0, 1.0, 1.0)
    J = np.empty((3, 3) + u.shape[1:])
    for c in range(3):
        grads = {}
        for axis in range(3):  # numpy axis
            if u.shape[1 + axis] == 1:
                grads[axis] = np.zeros(u.shape[1:])
            else:
                grads[axis] = np.gradient(u[c], steps[axis], axis=axis)
        for a in range(3):  # NIfTI axis a is numpy axis 2 - a
            J[c, a] = grads[2 - a] + (1.0 if c == a else 0.0)
    return (J[0, 0] * (J[1, 1] * J[2, 2] - J[1, 2] * J[2, 1])
            - J[0, 1] * (J[1, 0] * J[2, 2] - J[1, 2] * J[2, 0])
            + J[0, 2] * (J[1, 0] * J[2, 1] - J[1, 1] * J[2, 0]))


def l2r_jacobian_determinant(field: np.ndarray) -> np.ndarray:
    """The Learn2Reg evaluation's way: zero-padded [-0.5, 0, 0.5] correlation, cropped 2 voxels per face."""
    u = field.astype(np.float64)
    kernel = np.array([-0.5, 0.0, 0.5])
    J = np.empty((3, 3) + u.shape[1:])
    for c in range(3):
        for a in range(3):
            J[c, a] = ndimage.correlate1d(u[c], kernel, axis=2 - a, mode="constant", cval=0.0) + (1.0 if c == a else 0.0)
    J = J[:, :, 2:-2, 2:-2, 2:-2]
    return (J[0, 0] * (J[1, 1] * J[2, 2] - J[1, 2] * J[2, 1])
            - J[0, 1] * (J[1, 0] * J[2, 2] - J[1, 2] * J[2, 0])
            + J[0, 2] * (J[1, 0] * J[2, 1] - J[1, 1] * J[2, 0]))


def jacobian_stats(field: np.ndarray, spacing=None) -> dict:
    det = jacobian_determinant(field, spacing)
    positive = det[det > 0]
    l2r = l2r_jacobian_determinant(field) if min(field.shape[1:]) > 4 else np.empty(0)
    return {
        "det": det,
        "nonpositive_percent": float(100.0 * np.count_nonzero(det <= 0) / det.size),
        "negative_percent": float(100.0 * np.count_nonzero(det < 0) / det.size),
        "sdlogj": float(np.log(positive).std()) if positive.size else float("nan"),
        "l2r_sdlogj": float(np.log(np.clip(l2r + 3, 1e-9, 1e9)).std()) if l2r.size else float("nan"),
    }


# ------------------------------------------------------------------------------------- endpoint error
def endpoint_error(field: np.ndarray, truth: np.ndarray, spacing, mask: np.ndarray | None = None) -> float:
    """Mean over the mask (or every voxel) of the Euclidean norm, in mm, of the field error per voxel."""
    scale = np.asarray(spacing, dtype=np.float64).reshape(3, 1, 1, 1)  # channel c is NIfTI axis c
    norm = np.linalg.norm((field.astype(np.float64) - truth.astype(np.float64)) * scale, axis=0)
    values = norm[mask != 0] if mask is not None else norm.ravel()
    return float(values.mean()) if values.size else float("nan")


# ----------------------------------------------------------------------------------------------- CLI
def _nan_to_none(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def handle(req: dict) -> dict:
    op = req["op"]
    dims = req["dims"]
    if op in ("dice", "hd95", "l2r_hd95", "voxel_boundary_hd95"):
        fixed = read_volume(req["fixed"], dims, "i4")
        warped = read_volume(req["warped"], dims, "i4")
        moving = read_volume(req["moving"], dims, "i4") if req.get("moving") else warped
        labels = req["labels"]
        t0 = time.perf_counter()
        if op == "dice":
            per = dice(fixed, warped, labels, req.get("absentAs", "nan"))
        elif op == "hd95":
            per = hd95(fixed, warped, labels, req["spacing"], req.get("crop", True))
        elif op == "voxel_boundary_hd95":
            per = voxel_boundary_hd95(fixed, warped, labels, req.get("crop", True))
        else:
            per = l2r_hd95(fixed, moving, warped, labels)
        seconds = time.perf_counter() - t0
        values = [v for v in per.values() if not math.isnan(v)]  # np.nanmean: an infinite label stays in
        return {"perLabel": _nan_to_none(per), "mean": float(np.mean(values)) if values else None, "seconds": seconds}
    if op == "jacobian":
        field = read_volume(req["field"], dims, "f4", components=3)
        stats = jacobian_stats(field, req.get("spacing"))
        det = stats.pop("det")
        out = _nan_to_none(stats)
        out["min"] = float(det.min())
        out["max"] = float(det.max())
        if req.get("compareDet"):
            ours = read_volume(req["compareDet"], dims, "f4").astype(np.float64)
            out["maxAbsDiff"] = float(np.abs(ours - det).max())
        return out
    if op == "endpoint_error":
        field = read_volume(req["field"], dims, "f4", components=3)
        truth = read_volume(req["truth"], dims, "f4", components=3)
        mask = read_volume(req["mask"], dims, "i4") if req.get("mask") else None
        return {"epe": endpoint_error(field, truth, req["spacing"], mask)}
    raise ValueError(f"unknown op {op!r}")


def main(argv) -> int:
    """One request object → one answer object; a list of requests → the list of answers (one interpreter start)."""
    with open(argv[1]) as f:
        req = json.load(f)
    answer = [handle(r) for r in req] if isinstance(req, list) else handle(req)
    # JSON has no infinity; 1e999 parses as one in JavaScript and Python alike
    print(json.dumps(answer).replace("-Infinity", "-1e999").replace("Infinity", "1e999"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
