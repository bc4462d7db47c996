"""ANTs SyN on a prepared dataset's test pairs, for the accuracy benchmark (optional: needs antspyx).

    python bench/accuracy/syn.py <prepared_dir> <out_dir> [--pairs N] [--threads 2]

For each test pair: SyN (deformable only — the proxies are already affinely pre-aligned, the learned
methods get the same input) from the prepared moving to the prepared fixed image, both handed to ANTs on
the prepared grid (identity direction, origin 0, the prepared spacing), so ANTs' physical displacement
divided by the spacing is the displacement in voxels along each NIfTI axis: llmed's convention
(warped(p) = moving(p + u(p))). Writes ``<out_dir>/<pair>.f32`` (3 × I·J·K, component-major, i fastest)
and ``<out_dir>/syn.json`` (pairs, seconds per pair, the ANTs warp checked against ours). Exit 3 when
antspyx is not installed, after saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def read_prepared(folder: Path, name: str) -> tuple[np.ndarray, list[float]]:
    header = json.loads((folder / f"{name}.json").read_text())
    dtype = np.float32 if header["dtype"] == "float32" else np.int32
    nx, ny, nz = header["dims"]
    data = np.fromfile(folder / header["dataFile"], dtype=np.dtype(dtype).newbyteorder("<")).reshape(nz, ny, nx)
    return data, [float(s) for s in header["spacing"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="syn.py")
    ap.add_argument("prepared_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--pairs", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", str(args.threads))
    try:
        import ants
    except ImportError:
        print("ANTs SyN skipped: antspyx is not installed (pip install antspyx==0.6.3 into .venv to include it)", file=sys.stderr)
        return 3
    prepared, out = Path(args.prepared_dir), Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs = json.loads((prepared / "pairs.json").read_text())["test"]
    if args.pairs:
        pairs = pairs[: args.pairs]
    results = []
    for pair in pairs:
        moving, spacing = read_prepared(prepared, pair["moving"])
        fixed, _ = read_prepared(prepared, pair["fixed"])
        # ANTs images are (i, j, k); the prepared arrays are (k, j, i).
        to_ants = lambda a: ants.from_numpy(np.ascontiguousarray(a.transpose(2, 1, 0)).astype(np.float32), origin=(0.0, 0.0, 0.0), spacing=tuple(spacing))  # noqa: E731
        t0 = time.time()
        reg = ants.registration(fixed=to_ants(fixed), moving=to_ants(moving), type_of_transform="SyNOnly", initial_transform="Identity")
        seconds = time.time() - t0
        warp_file = next(f for f in reg["fwdtransforms"] if f.endswith(".nii.gz"))
        disp = ants.image_read(warp_file).numpy()  # (I, J, K, 3), mm along each axis (identity direction)
        field = (disp.transpose(3, 2, 1, 0) / np.asarray(spacing, dtype=np.float32)[:, None, None, None]).astype("<f4")
        name = f"{pair['moving']}_to_{pair['fixed']}"
        field.tofile(out / f"{name}.f32")
        # Check the convention: ANTs' own resampling of the moving image vs trilinear sampling at p + u(p).
        warped_ants = reg["warpedmovout"].numpy().transpose(2, 1, 0)
        from scipy.ndimage import map_coordinates

        k, j, i = np.meshgrid(*[np.arange(n) for n in fixed.shape], indexing="ij")
        coords = np.stack([k + field[2], j + field[1], i + field[0]])
        warped_ours = map_coordinates(moving, coords, order=1, mode="constant")
        agree = float(np.abs(warped_ours - warped_ants).max() / (np.abs(moving).max() + 1e-12))
        results.append({"pair": name, "moving": pair["moving"], "fixed": pair["fixed"], "seconds": seconds, "field": f"{name}.f32", "conventionCheckMaxRelDiff": agree})
        print(f"SyN {name}: {seconds:.1f} s, |ours - ANTs warped| / max = {agree:.2e}", file=sys.stderr, flush=True)
    (out / "syn.json").write_text(json.dumps({"antspyx": ants.__version__, "transform": "SyNOnly (identity initial; inputs pre-aligned)", "threads": args.threads, "pairs": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
