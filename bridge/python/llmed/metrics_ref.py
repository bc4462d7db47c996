"""numpy/scipy primitives the Metric plugins' Python references share, and the command line that runs a
reference on arrays TypeScript wrote to disk (the cross-checks in test/metrics and bench/metrics).

Each Metric plugin has a numpy reference, ``reference(options, inputs) -> dict[str, float]``, in its own
folder (``plugins/<id>/python/<module>/``, named by the descriptor's ``python`` entry). It is a second
implementation built from library routines (``scipy.ndimage.distance_transform_edt`` with ``sampling``,
``binary_erosion``, ``np.gradient``, ``np.percentile``, DeepMind's surface-distance for ``l2r-hd95``), so the
tests can compare it with the TypeScript metric, which is the one llmed uses. What they share lives here;
nothing here names a plugin. ``jacobian_determinant`` is also the determinant the synthetic-warps proxy
(llmed.proxies) counts folds with. The training code does not import this module (its validation Dice is
``llmed.train.dice_per_label``, in torch).

Inputs are those of a plugin case (packages/core/src/plugin-cases.ts, llmed.plugin_cases): label maps
(K, J, I), fields (3, K, J, I) with channel c = displacement along NIfTI axis c, in voxels, ``spacing``
[sx, sy, sz] in mm, ``labels`` a list. Spacing [sx, sy, sz] is ``sampling=(sz, sy, sx)`` on the arrays.
A reference returns ``{"value": v}`` and, for label metrics, ``{"perLabel.<l>": v_l}`` per label. Its
options come filled in from the descriptor's schema (the only place of their defaults); an optional one
without a default (``labels``) may be absent.

Command line::

    python metrics_ref.py request.json

``request.json`` is one request or a list of them (one interpreter start for all)::

    {"python": {"root": ".../plugins/hd95/python", "module": "llmed_hd95", "factory": "reference"},
     "options": {...}, "kwargs": {...},
     "inputs": {"fixedLabels": {"raw": "a.i32", "dtype": "int32", "shape": [K, J, I]}, "spacing": [..], ...}}

``raw`` inputs are little-endian files in llmed's layout (i fastest, fields component-major), which is the
C order of the shapes above; any other input passes through. The answer (or the list of answers) is one
JSON value on the last stdout line: the reference's dict (NaN as null, ±∞ as ±1e999) plus ``seconds``,
the time the reference took.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage


def array_sampling(spacing) -> tuple:
    """[sx, sy, sz] (NIfTI axis order) → sampling of a (K, J, I) array."""
    return (float(spacing[2]), float(spacing[1]), float(spacing[0]))


# ------------------------------------------------------------------------------------------- inputs
def label_map(x) -> np.ndarray:
    """A (K, J, I) integer array from a decoded case value (numpy or torch, leading 1-dims allowed)."""
    a = np.asarray(x)
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"a label map is (K, J, I), got shape {a.shape}")
    return a if np.issubdtype(a.dtype, np.integer) else a.astype(np.int64)


def vector_field(x) -> np.ndarray:
    """A (3, K, J, I) float64 array from a decoded case value (a leading batch of 1 allowed)."""
    a = np.asarray(x)
    if a.ndim == 5 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 4 or a.shape[0] != 3:
        raise ValueError(f"a field is (3, K, J, I), got shape {a.shape}")
    return a.astype(np.float64)


def input_spacing(inputs: dict) -> list[float]:
    return [float(s) for s in inputs.get("spacing", [1.0, 1.0, 1.0])]


def chosen_labels(options: dict, inputs: dict, *maps: np.ndarray) -> list[int]:
    """The labels a label metric scores: the ``labels`` option, else the input's list, else every non-zero
    label in the maps (the TypeScript ``chooseLabels``)."""
    if options.get("labels"):
        return [int(v) for v in options["labels"]]
    if inputs.get("labels"):
        return [int(v) for v in inputs["labels"]]
    present = set()
    for m in maps:
        present.update(int(v) for v in np.unique(m))
    present.discard(0)
    return sorted(present)


def label_result(per_label: dict, mean: float | None = None) -> dict[str, float]:
    """``{"value": nanmean, "perLabel.<l>": ...}``; the mean leaves NaN labels out (an infinite one stays in)."""
    values = [v for v in per_label.values() if not math.isnan(v)]
    value = mean if mean is not None else (float(np.mean(values)) if values else float("nan"))
    return {"value": value, **{f"perLabel.{k}": float(v) for k, v in per_label.items()}}


# -------------------------------------------------------------------------------------- surfaces
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


def per_label_surface_distances(fixed, warped, labels, sampling, reduce, crop: bool = True) -> dict:
    """label → ``reduce(A→B distances, B→A distances)`` over the 6-connectivity surfaces of A = fixed == l and
    B = warped == l; NaN when either is empty (the TypeScript ``perLabelSurfaceDistances``)."""
    out = {}
    for label in labels:
        a = fixed == label
        b = warped == label
        if not a.any() or not b.any():
            out[str(label)] = float("nan")
            continue
        out[str(label)] = float(reduce(*directed_surface_distances(a, b, sampling, crop)))
    return out


# -------------------------------------------------------------------------------------- Jacobian
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
    return determinant3(J)


def determinant3(J: np.ndarray) -> np.ndarray:
    """Determinant of a (3, 3, ...) stack of matrices, by cofactors along the first row."""
    return J[0, 0] * (J[1, 1] * J[2, 2] - J[1, 2] * J[2, 1]) - J[0, 1] * (J[1, 0] * J[2, 2] - J[1, 2] * J[2, 0]) + J[0, 2] * (J[1, 0] * J[2, 1] - J[1, 1] * J[2, 0])


def jacobian_compare(options: dict, inputs: dict) -> dict[str, float]:
    """The determinant of ``inputs["field"]`` against ``inputs["det"]`` (TypeScript's): for the cross-checks of
    imaging's ``jacobianDeterminant``, which every Jacobian metric calls."""
    det = jacobian_determinant(vector_field(inputs["field"]))
    ours = np.asarray(inputs["det"], dtype=np.float64).reshape(det.shape)
    return {"min": float(det.min()), "max": float(det.max()), "maxAbsDiff": float(np.abs(ours - det).max())}


# ----------------------------------------------------------------------------------------------- CLI
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_DTYPES = {"int32": "<i4", "float32": "<f4", "float64": "<f8", "uint8": "u1"}


def _function(python: dict):
    """``python.factory`` of ``python.module`` imported from ``python.root`` (no torch import on the way)."""
    module_name = python.get("module") or "llmed.metrics_ref"
    if not _MODULE_NAME.match(module_name):
        raise ValueError(f"python module {module_name!r} is not a dotted module name")
    root = python.get("root")
    if root:
        if not Path(root).is_dir():
            raise ValueError(f"python root {root} does not exist")
        if root not in sys.path:
            sys.path.insert(0, root)
    module = sys.modules[__name__] if module_name in ("llmed.metrics_ref", __name__) else importlib.import_module(module_name)
    fn = getattr(module, python.get("factory") or "reference", None)
    if not callable(fn):
        raise ValueError(f"{module_name} has no function {python.get('factory') or 'reference'}()")
    return fn


def _input(value):
    if isinstance(value, dict) and "raw" in value:
        return np.fromfile(value["raw"], dtype=np.dtype(_DTYPES[value.get("dtype", "float32")])).reshape(value["shape"])
    return value


def handle(req: dict) -> dict:
    fn = _function(req.get("python") or {})
    inputs = {k: _input(v) for k, v in (req.get("inputs") or {}).items()}
    t0 = time.perf_counter()
    out = dict(fn(dict(req.get("options") or {}), inputs, **(req.get("kwargs") or {})))
    out["seconds"] = time.perf_counter() - t0
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


def main(argv) -> int:
    """One request object → one answer object; a list of requests → the list of answers (one interpreter start)."""
    bridge_python = str(Path(__file__).resolve().parents[1])  # run as a script: the references import llmed
    if bridge_python not in sys.path:
        sys.path.insert(0, bridge_python)
    with open(argv[1]) as f:
        req = json.load(f)
    answer = [handle(r) for r in req] if isinstance(req, list) else handle(req)
    # JSON has no infinity; 1e999 parses as one in JavaScript and Python alike
    print(json.dumps(answer).replace("-Infinity", "-1e999").replace("Infinity", "1e999"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
