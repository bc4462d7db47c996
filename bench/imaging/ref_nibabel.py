"""Reference pipeline for bench/imaging/read-reorient-resample.ts, with nibabel + scipy.ndimage.

Usage: ref_nibabel.py INPUT.nii.gz RUNS OUT.f32 NX NY NZ

Per run: load the NIfTI (nibabel), reorient to RAS (nib.as_closest_canonical, which reads the data),
convert to float32, resample to (NX, NY, NZ) with scipy.ndimage.zoom(order=1, grid_mode=False) — the
align-corners convention llmed uses. Two variants of the resample step are timed on the same data:
"plain" zooms nibabel's array as it comes (a flipped/transposed Fortran-order view: what most code
does), "contiguous" first copies it to a C-contiguous array (copy time included), which suits
ndimage's C-order loops far better. Prints one JSON line with per-run timings in ms; writes the last
result to OUT.f32 as raw little-endian float32 with the i axis fastest (Fortran order), to compare
voxel for voxel with llmed's output.
"""

import json
import platform
import sys
import time

import nibabel as nib
import numpy as np
import scipy
from scipy import ndimage


def main() -> None:
    src, runs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    shape = tuple(int(x) for x in sys.argv[4:7])
    read_ms, resample_ms, total_ms = [], [], []
    resample_c_ms, total_c_ms = [], []
    result = None
    for _ in range(runs + 1):  # first run is a warm-up, not recorded
        t0 = time.perf_counter()
        img = nib.as_closest_canonical(nib.load(src))
        data = img.get_fdata(dtype=np.float32)
        t1 = time.perf_counter()
        factors = [o / i for o, i in zip(shape, data.shape)]
        result = ndimage.zoom(data, factors, order=1, grid_mode=False)
        t2 = time.perf_counter()
        result_c = ndimage.zoom(np.ascontiguousarray(data), factors, order=1, grid_mode=False)
        t3 = time.perf_counter()
        read_ms.append((t1 - t0) * 1e3)
        resample_ms.append((t2 - t1) * 1e3)
        total_ms.append((t2 - t0) * 1e3)
        resample_c_ms.append((t3 - t2) * 1e3)
        total_c_ms.append((t1 - t0 + t3 - t2) * 1e3)
    assert np.array_equal(result, result_c)
    result.astype("<f4").ravel(order="F").tofile(out)
    print(
        json.dumps(
            {
                "read_reorient_ms": read_ms[1:],
                "resample_ms": resample_ms[1:],
                "total_ms": total_ms[1:],
                "resample_contiguous_ms": resample_c_ms[1:],
                "total_contiguous_ms": total_c_ms[1:],
                "shape_in_ras": list(data.shape),
                "shape_out": list(result.shape),
                "versions": {"python": platform.python_version(), "nibabel": nib.__version__, "numpy": np.__version__, "scipy": scipy.__version__},
            }
        )
    )


if __name__ == "__main__":
    main()
