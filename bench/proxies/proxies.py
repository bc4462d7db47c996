"""Proxy datasets for the real-data benchmark, generated deterministically from the shared volumes.

None of the papers' datasets can be downloaded here; the real volumes that can are described in
``../shared/data/README.md``. This script turns them into registration datasets::

    .venv/bin/python bench/proxies/proxies.py <name|all> [--out .cache/data] [--data ../shared/data] [--force] [--downsample F]

It is a benchmark tool, not part of the trainer: it lives in bench/ and uses the libraries for everything
imaging (nibabel for NIfTI files and orientations, scipy for resampling and filters, SimpleITK for affine
registration) and llmed's own primitives for the rest — the torch warp and the reference metrics of
``bridge/python/llmed`` (put on ``sys.path`` below), and @llmed/imaging ``smoothRandomField`` for the known
deformations, run in TypeScript by ``random-fields.ts`` (Node and the workspace's tsx are needed). Each proxy is a folder ``<out>/<name>/`` of NIfTI files with

* ``dataset.json``: what the data is (``title`` names it honestly — a proxy, never a paper dataset),
  how it was made (generator parameters, source checksums, alignment results), its scans, and its
  pairs ``{moving, fixed, movingLabels?, fixedLabels?, groundTruthField?, split}``;
* ``pairs.json``: the same pairs as a plain list that ``llmed data prepare`` reads with the ``pairs``
  protocol (``data.manifest: "pairs.json"``). That protocol holds out the last ``max(1, round(n/5))``
  pairs for testing and the 2 before them for validation (picking checkpoints; not trained on); the
  generators order the pairs so that these are the intended ones, and ``split`` in ``dataset.json``
  says which they are.

Proxies:

``oasis-proxy``
    The brains of ``brain/``: the VoxelMorph test subject and FreeSurfer's "bert" (FreeSurfer aseg) and
    the two OASIS-derived LapIRN brains (2 tissue classes). Each is brought into one RAS frame and
    affinely aligned to the VoxelMorph subject (SimpleITK: moments initialisation → similarity →
    affine, Mattes mutual information; without SimpleITK a centre-of-mass + second-moments
    initialisation only, and the title says so), then resampled onto one 1 mm grid (160×192×176).
    aseg is evaluated on the usual 30-label subset; the tissue maps of the LapIRN pair use other ids
    than aseg, so they are kept as extra files and only the two aseg brains carry labels in the pairs.
``abdomen-mrct-proxy``
    One abdominal MR and one CT slab of two different subjects (TotalSegmentator test volumes), organ
    labels relabelled onto the shared 16-organ table, the MR pre-aligned to the CT by a similarity
    transform fitted to matching organ centroids and resampled onto the CT grid. Test pair: MR → CT;
    training pairs: the MR under smooth random deformations → CT. Intensities stay in their units
    (CT in HU); the HU window is the experiment's preprocessing.
``knee-synthetic``
    Synthetic DESS-like images on real OAI knee label maps: per-label intensities, texture, blur,
    bias field and Rician noise, several seeded instances per label map, on a 0.7 mm grid.
``prostate-mr-us``
    The DeepReg MR → transrectal-ultrasound pair as is (images copied byte for byte); only the 4-D
    label stacks become 3-D label maps (1 gland, 2 and 3 the two landmarks).
``synthetic-warps``
    The aligned brains of the oasis proxy at 2 mm, each warped by known smooth random deformations
    (@llmed/imaging ``smoothRandomField`` itself, see ``random-fields.ts``). Pairs are original →
    warped with the ground-truth field saved (NIfTI DISPVECT, world millimetres, on the fixed grid),
    so endpoint error can be computed.

Determinism: every random draw is seeded, registration runs single-threaded with a seeded sampler and
its result is rounded before use, gzip headers carry no time stamp; the same command gives the same
bytes. Each folder is built under a staging name and published with ``llmed.atomic.publish_folder`` (the old
folder is renamed aside, never deleted before the new one is in place); an existing folder whose
``dataset.json`` records the same parameters is left alone unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
# llmed's Python primitives (warp, reference metrics, atomic publishing) come from the bridge package.
if str(REPO_ROOT / "bridge" / "python") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "bridge" / "python"))

from llmed.atomic import publish_folder, recover_folder, staging_folder  # noqa: E402
from llmed.files import sha256_file  # noqa: E402

GENERATOR_VERSION = 2  # 2: validation pairs (held out of training) marked and ordered before the test pairs
FORMAT = "llmed-proxy-v1"
COMMAND = "python bench/proxies/proxies.py"
TSX = REPO_ROOT / "node_modules" / ".bin" / "tsx"
FIELD_SCRIPT = Path(__file__).resolve().with_name("random-fields.ts")
DEFAULT_OUT = REPO_ROOT / ".cache" / "data"
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data"
SOURCE_ENV = "LLMED_SHARED_DATA"

#: FreeSurfer aseg labels of the usual 30-structure evaluation subset (VoxelMorph / LLaMA-Reg OASIS).
ASEG_EVALUATION_LABELS = [2, 3, 4, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 28, 31, 41, 42, 43, 46, 47, 49, 50, 51, 52, 53, 54, 60, 63]
ASEG_NAMES = {
    2: "Left-Cerebral-White-Matter",
    3: "Left-Cerebral-Cortex",
    4: "Left-Lateral-Ventricle",
    7: "Left-Cerebellum-White-Matter",
    8: "Left-Cerebellum-Cortex",
    10: "Left-Thalamus",
    11: "Left-Caudate",
    12: "Left-Putamen",
    13: "Left-Pallidum",
    14: "3rd-Ventricle",
    15: "4th-Ventricle",
    16: "Brain-Stem",
    17: "Left-Hippocampus",
    18: "Left-Amygdala",
    24: "CSF",
    28: "Left-VentralDC",
    31: "Left-choroid-plexus",
    41: "Right-Cerebral-White-Matter",
    42: "Right-Cerebral-Cortex",
    43: "Right-Lateral-Ventricle",
    46: "Right-Cerebellum-White-Matter",
    47: "Right-Cerebellum-Cortex",
    49: "Right-Thalamus",
    50: "Right-Caudate",
    51: "Right-Putamen",
    52: "Right-Pallidum",
    53: "Right-Hippocampus",
    54: "Right-Amygdala",
    60: "Right-VentralDC",
    63: "Right-choroid-plexus",
}

#: The organ table shared by the abdominal MR and CT label maps: (name, CT id, MR id); the proxy's id
#: of an organ is its 1-based row number.
ABDOMEN_ORGANS = [
    ("spleen", 1, 1),
    ("kidney_right", 2, 2),
    ("kidney_left", 3, 3),
    ("gallbladder", 4, 4),
    ("liver", 5, 5),
    ("stomach", 6, 6),
    ("pancreas", 7, 7),
    ("adrenal_gland_right", 8, 8),
    ("adrenal_gland_left", 9, 9),
    ("small_bowel", 18, 13),
    ("duodenum", 19, 14),
    ("colon", 20, 15),
    ("aorta", 52, 23),
    ("inferior_vena_cava", 63, 24),
    ("portal_vein_and_splenic_vein", 64, 25),
    ("spinal_cord", 79, 21),
]

KNEE_NAMES = {1: "femur", 2: "femoral cartilage", 3: "tibia", 4: "tibial cartilage", 5: "patella", 6: "patellar cartilage", 7: "lesion 7", 8: "lesion 8", 9: "lesion 9"}

SOURCES_HINT = (
    "put the shared real volumes (folders brain/, abdomen/, knee-labels/, prostate-mr-us/ as listed in ../shared/data/README.md) there, or name their folder with --data DIR or ${env}".replace(
        "{env}", SOURCE_ENV
    )
)


class ProxyError(Exception):
    """A proxy that cannot be generated: missing or unreadable input. Printed as one line with a hint."""

    kind = "data"

    def __init__(self, where: str | os.PathLike, message: str, hint: str | None = None):
        super().__init__(message)
        self.where = str(where)
        self.message = message
        self.hint = hint

    def format(self) -> str:
        text = f"error[{self.kind}] {self.where}: {self.message}"
        return text + (f"\n  hint: {self.hint}" if self.hint else "")


# ================================================================================================ I/O


def _nib():
    import nibabel as nib

    return nib


@dataclass
class Volume:
    """A NIfTI volume in memory: ``data`` indexed ``[i, j, k]`` (NIfTI order) and its RAS affine."""

    data: np.ndarray
    affine: np.ndarray
    file: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape[:3])  # type: ignore[return-value]

    @property
    def spacing(self) -> np.ndarray:
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))


def read_volume(path: Path, *, labels: bool = False) -> Volume:
    """Read a NIfTI file as float32 (images) or int32 (label maps); errors name the file."""
    nib = _nib()
    try:
        img = nib.load(str(path))
        raw = np.asanyarray(img.dataobj)
    except FileNotFoundError:
        raise ProxyError(path, "file not found") from None
    except Exception as err:  # nibabel raises several types for damaged files
        raise ProxyError(path, f"not a readable NIfTI file ({type(err).__name__}: {err})") from None
    if raw.ndim < 3:
        raise ProxyError(path, f"expected a 3-D volume, got shape {raw.shape}")
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ProxyError(path, "the header's voxel-to-world affine is singular or not finite")
    if labels:
        if raw.dtype.kind == "f":
            if not np.all(np.isfinite(raw)) or not np.array_equal(raw, np.round(raw)):
                raise ProxyError(path, "label map is not integer-valued", "pass a segmentation, not an intensity image")
        data = raw.astype(np.int32)
    else:
        data = raw.astype(np.float32)
        if not np.all(np.isfinite(data)):
            raise ProxyError(path, f"image holds {int((~np.isfinite(data)).sum())} non-finite values")
    return Volume(data, affine, str(path))


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, *, kind: str, description: str) -> None:
    """Write a NIfTI-1 file deterministically. ``kind``: 'image' (float32), 'image-int16', 'labels'
    (int16, intent LABEL) or 'field' (float32 [nx, ny, nz, 1, 3], intent DISPVECT)."""
    nib = _nib()
    if kind == "image":
        arr = np.asarray(data, dtype=np.float32)
    elif kind == "image-int16":
        arr = np.asarray(data, dtype=np.int16)
    elif kind == "labels":
        if data.min(initial=0) < -32768 or data.max(initial=0) > 32767:
            raise ValueError(f"label values {data.min()}..{data.max()} do not fit int16")
        arr = np.asarray(data, dtype=np.int16)
    elif kind == "field":
        arr = np.asarray(data, dtype=np.float32)
        if arr.ndim != 4 or arr.shape[3] != 3:
            raise ValueError(f"a field is written from [nx, ny, nz, 3], got {arr.shape}")
        arr = arr[:, :, :, None, :]
    else:
        raise ValueError(f"unknown NIfTI kind {kind!r}")
    img = nib.Nifti1Image(arr, affine)
    hdr = img.header
    hdr.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=2)
    img.set_sform(affine, code=2)
    if kind == "labels":
        hdr.set_intent("label")
    elif kind == "field":
        hdr.set_intent(1006)  # NIFTI_INTENT_DISPVECT
    hdr["descrip"] = description[:79].encode("ascii", "replace")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


# ============================================================================ geometry and resampling


def ras_grid_affine(spacing: float | Sequence[float], origin: Sequence[float]) -> np.ndarray:
    """Affine of an axis-aligned RAS grid: voxel (0, 0, 0) at ``origin`` (mm), ``spacing`` per axis."""
    sp = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    a = np.eye(4)
    a[:3, :3] = np.diag(sp)
    a[:3, 3] = origin
    return a


def resample(vol: Volume, shape: Sequence[int], affine: np.ndarray, *, order: int, world_to_source: np.ndarray | None = None) -> np.ndarray:
    """Sample ``vol`` on the grid (``shape``, ``affine``): output voxel p reads the source at
    ``A_src⁻¹ · T · A_out · p``, with ``T = world_to_source`` (output world → source world; identity
    by default). ``order`` 1 = trilinear (zeros outside, interpolated at the edge like grid_sample's
    zeros padding), 0 = nearest (labels)."""
    from scipy import ndimage

    t = np.eye(4) if world_to_source is None else world_to_source
    m = np.linalg.inv(vol.affine) @ t @ affine
    src = vol.data if order == 0 else vol.data.astype(np.float32)
    out_dtype = vol.data.dtype if order == 0 else np.float32
    mode = "constant" if order == 0 else "grid-constant"
    return ndimage.affine_transform(src, m[:3, :3], offset=m[:3, 3], output_shape=tuple(int(n) for n in shape), order=order, mode=mode, cval=0, output=out_dtype, prefilter=False)


def resample_labels_smooth(vol: Volume, shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """Downsample a label map without losing thin structures to nearest-neighbour aliasing: every label's
    mask is resampled trilinearly and each output voxel takes the label of the largest value (ties: the
    lower label)."""
    values = [int(v) for v in np.unique(vol.data)]
    best = np.full(tuple(shape), -1.0, dtype=np.float32)
    out = np.zeros(tuple(shape), dtype=np.int32)
    for v in values:
        mask = Volume((vol.data == v).astype(np.float32), vol.affine)
        p = resample(mask, shape, affine, order=1)
        take = p > best
        out[take] = v
        best[take] = p[take]
    return out


def reorient_from_anatomy(vol_labels: Volume) -> tuple[np.ndarray, str] | None:
    """Axis codes of an aseg label map read from its anatomy, and a centred 1-voxel-spacing affine for them.

    Left and right hemisphere structures give the L–R axis, putamen versus cerebellum cortex the A–P
    axis, lateral ventricles versus brain stem the S–I axis. Returns ``(affine, codes)`` or None when
    the structures are missing.
    """
    d = vol_labels.data

    def centroid(labels: Sequence[int]) -> np.ndarray | None:
        mask = np.isin(d, labels)
        return np.argwhere(mask).mean(axis=0) if mask.any() else None

    pairs = {
        "R": ([2, 3, 4, 10, 11, 12, 13, 17], [41, 42, 43, 49, 50, 51, 52, 53]),  # left → right structures
        "A": ([8, 47], [12, 51]),  # cerebellum cortex → putamen
        "S": ([16], [4, 43]),  # brain stem → lateral ventricles
    }
    opposite = {"R": "L", "A": "P", "S": "I"}
    codes = [""] * 3
    for world, (a, b) in pairs.items():
        ca, cb = centroid(a), centroid(b)
        if ca is None or cb is None:
            return None
        v = cb - ca
        axis = int(np.argmax(np.abs(v)))
        if codes[axis]:
            return None  # two directions on one voxel axis: not a sensible aseg map
        codes[axis] = world if v[axis] > 0 else opposite[world]
    nib = _nib()
    ornt = nib.orientations.axcodes2ornt(tuple(codes))
    spacing = vol_labels.spacing
    a = np.zeros((4, 4))
    a[3, 3] = 1
    for vox_axis, (world_axis, sign) in enumerate(ornt):
        a[int(world_axis), vox_axis] = sign * spacing[vox_axis]
    a[:3, 3] = -a[:3, :3] @ ((np.array(d.shape[:3]) - 1) / 2.0)
    return a, "".join(codes)


def axis_codes(affine: np.ndarray) -> str:
    return "".join(_nib().aff2axcodes(affine))


# ===================================================================== smooth random fields (TypeScript)


def smooth_random_fields(dims_ijk: Sequence[int], specs: Sequence[tuple[float, float, int]]) -> list[np.ndarray]:
    """Fields of @llmed/imaging ``smoothRandomField`` on a grid of ``dims_ijk`` voxels, one per
    ``(max_displacement, smoothness, seed)``: white noise blurred with σ = max(smoothness/2, 1), tapered to zero
    over the outer ``smoothness`` voxels, scaled so the largest magnitude is ``max_displacement`` voxels.

    They are made by the TypeScript implementation itself (``random-fields.ts``, one Node process for the whole
    batch) and read back from raw files, so there is one implementation of the algorithm and its random stream.
    Returns float32 arrays ``(3, K, J, I)``, channel c along NIfTI axis c, in voxels."""
    dims = [int(n) for n in dims_ijk]
    if not specs:
        return []
    if not TSX.exists():
        raise ProxyError(TSX, "the TypeScript runner tsx is missing (the random fields are made by @llmed/imaging)", "run `npm install` (or `npm run setup`) in the repository first")
    with tempfile.TemporaryDirectory(prefix="llmed-fields-") as tmp:
        job = {"dims": dims, "fields": [{"maxDisplacement": float(m), "smoothness": float(s), "seed": int(seed), "file": f"{i}.f32"} for i, (m, s, seed) in enumerate(specs)]}
        job_file = Path(tmp) / "job.json"
        job_file.write_text(json.dumps(job))
        r = subprocess.run([str(TSX), str(FIELD_SCRIPT), str(job_file)], cwd=REPO_ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            raise ProxyError(FIELD_SCRIPT, f"making the random fields failed (exit {r.returncode}): {r.stderr.strip()[-400:]}")
        nx, ny, nz = dims
        return [np.fromfile(Path(tmp) / f["file"], dtype="<f4").reshape(3, nz, ny, nx).astype(np.float32) for f in job["fields"]]


def smooth_random_field(dims_ijk: Sequence[int], max_displacement: float, smoothness: float, seed: int) -> np.ndarray:
    """One field of :func:`smooth_random_fields`."""
    return smooth_random_fields(dims_ijk, [(max_displacement, smoothness, seed)])[0]


def warp_volume(data_ijk: np.ndarray, field_kji: np.ndarray, *, labels: bool) -> np.ndarray:
    """``data(p + u(p))`` with llmed's torch spatial transformer (the TypeScript warp's twin): trilinear,
    zeros outside, for images; nearest for labels. ``data_ijk`` [i, j, k]; the field (3, K, J, I) in voxels."""
    import torch

    from llmed.nn import warp

    vol = torch.from_numpy(np.ascontiguousarray(data_ijk.transpose(2, 1, 0)).astype(np.float32))[None, None]
    f = torch.from_numpy(np.ascontiguousarray(field_kji))[None]
    out = warp(vol, f, mode="nearest" if labels else "bilinear")[0, 0].numpy().transpose(2, 1, 0)
    return np.rint(out).astype(np.int32) if labels else out.astype(np.float32)


def field_voxels_to_mm(field_kji: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Voxel displacements (3, K, J, I) → world-millimetre vectors [i, j, k, 3] (the DISPVECT layout of
    @llmed/imaging ``writeDisplacementField``: v_mm = A₃ₓ₃ · u_vox)."""
    u = field_kji.transpose(3, 2, 1, 0).astype(np.float64)  # [i, j, k, c]
    return (u @ affine[:3, :3].T).astype(np.float32)


def field_mm_to_voxels(field_ijk3: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Inverse of :func:`field_voxels_to_mm`: [i, j, k, 3] mm (or [i, j, k, 1, 3]) → (3, K, J, I) voxels."""
    v = np.asarray(field_ijk3, dtype=np.float64).reshape(*field_ijk3.shape[:3], 3)
    u = v @ np.linalg.inv(affine[:3, :3]).T
    return u.transpose(3, 2, 1, 0).astype(np.float32)


def jacobian_nonpositive_percent(field_kji: np.ndarray) -> float:
    from llmed.metrics_ref import jacobian_determinant

    det = jacobian_determinant(field_kji)
    return float(100.0 * np.count_nonzero(det <= 0) / det.size)


# ======================================================================================== metrics


def mean_dice(a: np.ndarray, b: np.ndarray, labels: Sequence[int]) -> float:
    """Mean Dice (the dice plugin's numpy reference, plugins/dice/python) over the labels present in either map,
    each rounded to 4 digits first (the dataset.json checks); NaN when none is present."""
    plugin_python = str(Path(__file__).resolve().parents[2] / "plugins" / "dice" / "python")
    if plugin_python not in sys.path:
        sys.path.insert(0, plugin_python)
    from llmed_dice import dice

    s = [round(v, 4) for v in dice(a, b, labels).values() if not math.isnan(v)]
    return round(float(np.mean(s)), 4) if s else float("nan")


def protocol_test_count(n_pairs: int) -> int:
    """How many trailing pairs ``llmed data prepare``'s ``pairs`` protocol holds out (JavaScript rounding)."""
    return max(1, int(math.floor(n_pairs / 5 + 0.5)))


def protocol_val_count(n_pairs: int) -> int:
    """How many pairs just before the test pairs the ``pairs`` protocol holds out of training for validation:
    2 while at least 2 stay for training, else none."""
    return 2 if n_pairs - protocol_test_count(n_pairs) >= 4 else 0


# =========================================================================== affine pre-alignment


def have_simpleitk() -> bool:
    try:
        import SimpleITK  # noqa: F401
    except ImportError:
        return False
    return True


def _to_sitk(vol: Volume):
    """numpy [i, j, k] + RAS affine → a SimpleITK image (LPS physical space)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(vol.data.transpose(2, 1, 0)).astype(np.float32))
    flip = np.diag([-1.0, -1.0, 1.0])
    lin = flip @ vol.affine[:3, :3]
    spacing = np.sqrt((lin**2).sum(axis=0))
    img.SetSpacing([float(s) for s in spacing])
    img.SetDirection([float(x) for x in (lin / spacing).ravel()])
    img.SetOrigin([float(x) for x in flip @ vol.affine[:3, 3]])
    return img


def _sitk_to_ras_matrix(tx) -> np.ndarray:
    """A SimpleITK matrix transform (fixed LPS point → moving LPS point) as a 4×4 RAS world matrix."""
    m = np.array(tx.GetMatrix(), dtype=np.float64).reshape(3, 3)
    c = np.array(tx.GetCenter(), dtype=np.float64)
    t = np.array(tx.GetTranslation(), dtype=np.float64)
    flip = np.diag([-1.0, -1.0, 1.0])
    out = np.eye(4)
    out[:3, :3] = flip @ m @ flip
    out[:3, 3] = flip @ (t + c - m @ c)
    return out


def _as_matrix_transform(tx, kind: str):
    import SimpleITK as sitk

    if tx.GetName() == "CompositeTransform":
        tx = sitk.CompositeTransform(tx).GetNthTransform(0)
    return sitk.Similarity3DTransform(tx) if kind == "similarity" else sitk.AffineTransform(tx)


def coarsen(vol: Volume, spacing: float) -> Volume:
    """The volume on a grid of about ``spacing`` mm in its own orientation (Gaussian anti-aliasing first),
    so that registration cost does not depend on the source resolution."""
    from scipy import ndimage

    factors = np.maximum(spacing / vol.spacing, 1.0)
    if np.all(factors < 1.2):
        return vol
    smooth = ndimage.gaussian_filter(vol.data.astype(np.float32), sigma=tuple(0.5 * np.maximum(factors - 1, 0) + 1e-3))
    shape = tuple(max(2, int(round(n / f))) for n, f in zip(vol.shape, factors))
    step = (np.array(vol.shape) - 1) / np.maximum(np.array(shape) - 1, 1)
    affine = vol.affine.copy()
    affine[:3, :3] = vol.affine[:3, :3] * step
    return Volume(resample(Volume(smooth, vol.affine), shape, affine, order=1), affine, vol.file)


def align_simpleitk(fixed: Volume, moving: Volume, *, seed: int = 7) -> dict[str, Any]:
    """Moments initialisation → similarity → affine (Mattes MI, 2-level pyramid, single thread, seeded
    random sampling). Returns the RAS world matrices (fixed world → moving world) of each stage."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    f, m = _to_sitk(fixed), _to_sitk(coarsen(moving, float(fixed.spacing.min())))
    init = sitk.CenteredTransformInitializer(f, m, sitk.Similarity3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS)

    def run(initial, iterations: int):
        r = sitk.ImageRegistrationMethod()
        r.SetNumberOfThreads(1)
        r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
        r.SetMetricSamplingStrategy(r.RANDOM)
        r.SetMetricSamplingPercentage(0.1, seed)
        r.SetInterpolator(sitk.sitkLinear)
        r.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=iterations, relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8)
        r.SetOptimizerScalesFromPhysicalShift()
        r.SetShrinkFactorsPerLevel([2, 1])
        r.SetSmoothingSigmasPerLevel([1.0, 0.0])
        r.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
        r.SetInitialTransform(initial, inPlace=False)
        out = r.Execute(f, m)
        return out, float(r.GetMetricValue()), r.GetOptimizerIteration(), r.GetOptimizerStopConditionDescription()

    sim_raw, sim_metric, _, _ = run(init, 150)
    sim = _as_matrix_transform(sim_raw, "similarity")
    aff0 = sitk.AffineTransform(3)
    aff0.SetCenter(sim.GetCenter())
    aff0.SetMatrix(sim.GetMatrix())
    aff0.SetTranslation(sim.GetTranslation())
    aff_raw, aff_metric, iters, stop = run(aff0, 150)
    aff = _as_matrix_transform(aff_raw, "affine")
    return {
        "method": f"SimpleITK {sitk.Version.VersionString()}: moments init, similarity, affine; Mattes MI (32 bins, 10% random samples, seed {seed}), shrink 2/1, single thread",
        "moments": _sitk_to_ras_matrix(init),
        "similarity": _sitk_to_ras_matrix(sim),
        "affine": _sitk_to_ras_matrix(aff),
        "metric": {"similarity": round(sim_metric, 5), "affine": round(aff_metric, 5)},
        "stop": stop.split(".")[0][:120],
    }


def _moments(vol: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Intensity centre of mass (world mm) and per-world-axis standard deviation of a volume."""
    w = np.clip(vol.data.astype(np.float64), 0, None)
    idx = np.indices(vol.shape).reshape(3, -1)
    world = vol.affine[:3, :3] @ idx + vol.affine[:3, 3:4]
    total = w.sum()
    if total <= 0:
        raise ProxyError(vol.file, "image is empty (no positive intensity): cannot compute its centre of mass")
    ww = w.reshape(-1) / total
    com = world @ ww
    sd = np.sqrt(((world - com[:, None]) ** 2) @ ww)
    return com, sd


def align_moments(fixed: Volume, moving: Volume) -> dict[str, Any]:
    """Fallback without SimpleITK: centre of mass + per-axis scale from second moments (no rotation)."""
    cf, sf = _moments(coarsen(fixed, 2.0))
    cm, sm = _moments(coarsen(moving, 2.0))
    t = np.eye(4)
    t[:3, :3] = np.diag(sm / sf)
    t[:3, 3] = cm - t[:3, :3] @ cf
    return {"method": "centre of mass + second-moments scaling (scipy; SimpleITK not installed: no affine registration)", "moments": t, "affine": t, "metric": {}, "stop": "closed form"}


def round_matrix(m: np.ndarray) -> np.ndarray:
    """Round a transform so the same data gives the same bytes even if the optimiser's last digits wobble."""
    return np.round(m, 6)


# ======================================================================================= framework


@dataclass
class Context:
    source: Path
    out: Path
    downsample: int = 1
    force: bool = False
    aligner: str = "auto"
    log: Callable[[str], None] = print
    memo: dict = field(default_factory=dict)

    def require(self, proxy: str, *relative: str) -> list[Path]:
        if not self.source.is_dir():
            raise ProxyError(self.source, "shared data folder does not exist", SOURCES_HINT)
        paths = [self.source / r for r in relative]
        missing = [str(p.relative_to(self.source)) for p in paths if not p.is_file()]
        if missing:
            raise ProxyError(self.source, f"{proxy} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} missing", SOURCES_HINT)
        return paths

    def use_simpleitk(self) -> bool:
        if self.aligner == "moments":
            return False
        ok = have_simpleitk()
        if self.aligner == "simpleitk" and not ok:
            raise ProxyError("SimpleITK", "--aligner simpleitk was asked for, but SimpleITK is not installed", "npm run setup (SimpleITK is pinned in bridge/python/requirements.txt)")
        return ok


@dataclass
class Built:
    """What a generator hands back: the dataset description (files already written into ``folder``)."""

    title: str
    description: str
    scans: list[dict]
    pairs: list[dict]
    extra: dict = field(default_factory=dict)


def finish_pairs(pairs: list[dict]) -> list[dict]:
    """Mark each pair's split by the ``pairs`` protocol's rule (the last max(1, round(n/5)) are test, the 2 before
    them validation, see :func:`protocol_val_count`)."""
    n = len(pairs)
    n_test, n_val = protocol_test_count(n), protocol_val_count(n)
    for i, p in enumerate(pairs):
        p["split"] = "test" if i >= n - n_test else "val" if i >= n - n_test - n_val else "train"
    return pairs


def generate(name: str, ctx: Context) -> tuple[Path, bool, float]:
    """Build one proxy into ``ctx.out/name`` (temporary folder, then rename). Returns (folder, skipped, seconds)."""
    spec = PROXIES[name]
    sources = ctx.require(name, *spec.sources(ctx))
    params = {
        "generator": GENERATOR_VERSION,
        **({"proxyVersion": spec.version} if spec.version != 1 else {}),
        "downsample": ctx.downsample,
        "aligner": ("simpleitk" if ctx.use_simpleitk() else "moments") if spec.aligns else None,
        "sources": {str(p.relative_to(ctx.source)): sha256_file(p) for p in sources},
    }
    final = ctx.out / name
    stamp = final / "dataset.json"
    if not ctx.force and stamp.is_file():
        try:
            if json.loads(stamp.read_text()).get("generator", {}).get("params") == params:
                return final, True, 0.0
        except (OSError, json.JSONDecodeError):
            pass
    t0 = time.time()
    recover_folder(final)  # an earlier run killed while publishing left the old folder aside: put it back first
    tmp = staging_folder(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        built = spec.build(ctx, tmp)
        pairs = finish_pairs(built.pairs)
        dataset = {
            "format": FORMAT,
            "name": name,
            "title": built.title,
            "description": built.description,
            "generator": {
                "command": f"{COMMAND} {name}" + (f" --downsample {ctx.downsample}" if ctx.downsample != 1 else ""),
                "params": params,
            },
            **built.extra,
            "scans": built.scans,
            "pairs": pairs,
            "pairsFile": "pairs.json",
            "split": "pairs.json feeds llmed's 'pairs' protocol: the last max(1, round(n/5)) pairs test, the 2 before them validate (untrained); 'split' marks them",
        }
        plain = [{k: p[k] for k in ("moving", "fixed", "movingLabels", "fixedLabels", "groundTruthField") if p.get(k)} for p in pairs]
        (tmp / "pairs.json").write_text(json.dumps(plain, indent=2) + "\n")
        (tmp / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n")
        publish_folder(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, False, time.time() - t0


# ============================================================================================ brains


BRAIN_FILES = {
    "vxm_subject": ("brain/vxm_subject_t1.nii.gz", "brain/vxm_subject_aseg.nii.gz", "aseg"),
    "bert": ("brain/bert_t1.nii.gz", "brain/bert_aseg.nii.gz", "aseg"),
    "oasis_a": ("brain/image_A_160x192x144.nii.gz", "brain/image_A_160x192x144_seg.nii.gz", "tissue"),
    "oasis_b": ("brain/image_B_160x192x144.nii.gz", "brain/image_B_160x192x144_seg.nii.gz", "tissue"),
}
#: Ids the LapIRN pair's two tissue classes get: above every aseg value (aseg stays below 256), so the families never mix.
TISSUE_IDS = {1: 901, 2: 902}
TISSUE_NAMES = {901: "tissue class 1 (darker: grey-matter-like)", 902: "tissue class 2 (brighter: white-matter-like)"}
#: The common brain grid: 160×192×176 mm, RAS, centred on the reference brain's label extent.
BRAIN_GRID_MM = (160, 192, 176)


def _brain_sources(ctx: Context) -> list[str]:
    return [f for img, lab, _ in BRAIN_FILES.values() for f in (img, lab)]


def align_brains(ctx: Context) -> dict[str, Any]:
    """Read and orientation-check the four brains and align each to the reference (memoised: the
    alignment does not depend on the output grid). Returns the volumes, the common grid's centre and
    each brain's stage matrices (output world → source world)."""
    use_sitk = ctx.use_simpleitk()
    key = ("brain-alignment", use_sitk)
    if key in ctx.memo:
        return ctx.memo[key]
    notes: dict[str, list[str]] = {n: [] for n in BRAIN_FILES}
    raw: dict[str, tuple[Volume, Volume]] = {}
    for name, (img_rel, lab_rel, family) in BRAIN_FILES.items():
        img = read_volume(ctx.source / img_rel)
        lab = read_volume(ctx.source / lab_rel, labels=True)
        if img.shape != lab.shape:
            raise ProxyError(ctx.source / lab_rel, f"label grid {lab.shape} differs from its image's {img.shape} ({img_rel})")
        if not np.allclose(img.affine, lab.affine, atol=1e-3):
            notes[name].append(f"{Path(lab_rel).name} has a different header affine than its image on the same {'x'.join(map(str, img.shape))} grid; the image's geometry is used for both")
            lab = Volume(lab.data, img.affine, lab.file)
        if family == "aseg":
            found = reorient_from_anatomy(lab)
            if found is None:
                raise ProxyError(lab.file, "aseg label map lacks the structures used to check its orientation (hemisphere pairs, cerebellum, putamen, brain stem, ventricles)")
            anat_affine, codes = found
            header_codes = axis_codes(img.affine)
            if codes != header_codes:
                notes[name].append(
                    f"header says {header_codes}, but the aseg anatomy (left/right structures, "
                    f"cerebellum behind putamen, ventricles above brain stem) lies {codes}: the voxel "
                    f"array is read as {codes} (1 mm, centred)"
                )
                img = Volume(img.data, anat_affine, img.file)
                lab = Volume(lab.data, anat_affine, lab.file)
        else:
            notes[name].append(
                "2 tissue classes only: left/right handedness cannot be checked from the labels; header "
                "orientation taken as is (when this generator was written, a mirrored copy registered worse to "
                "the reference: Mattes MI -0.775 vs -0.791 for A, -0.750 vs -0.763 for B)"
            )
            lab = Volume(_relabel(lab.data, TISSUE_IDS), lab.affine, lab.file)
        raw[name] = (img, lab)

    # the common grid is centred on the reference brain's label extent
    ref_img, ref_lab = raw["vxm_subject"]
    idx = np.argwhere(ref_lab.data > 0)
    corners = np.array([[a, b, c] for a in (idx[:, 0].min(), idx[:, 0].max()) for b in (idx[:, 1].min(), idx[:, 1].max()) for c in (idx[:, 2].min(), idx[:, 2].max())], dtype=np.float64)
    world = corners @ ref_lab.affine[:3, :3].T + ref_lab.affine[:3, 3]
    centre = np.round((world.min(axis=0) + world.max(axis=0)) / 2)
    # registration runs against the reference on a 2 mm grid (cheap, and the same for every output grid)
    reg_shape, reg_affine = brain_grid(centre, 2.0)
    reg_ref = Volume(resample(ref_img, reg_shape, reg_affine, order=1), reg_affine, ref_img.file)

    alignment: dict[str, Any] = {}
    stages: dict[str, dict[str, np.ndarray]] = {}
    for name, (img, _lab) in raw.items():
        t0 = time.time()
        if name == "vxm_subject":
            res = {"method": "reference (identity)", "moments": np.eye(4), "affine": np.eye(4), "metric": {}}
        elif use_sitk:
            res = align_simpleitk(reg_ref, img)
        else:
            res = align_moments(reg_ref, img)
        final = round_matrix(res["affine"])
        stages[name] = {"world": np.eye(4), "moments": round_matrix(res["moments"]), "affine": final}
        alignment[name] = {
            "source": BRAIN_FILES[name][0],
            "orientationNotes": notes[name],
            "method": res["method"],
            "worldToSource": final.tolist(),
            "metric": res["metric"],
        }
        ctx.log(f"  aligned {name} ({time.time() - t0:.1f} s)")
    result = {"raw": raw, "centre": centre, "stages": stages, "alignment": alignment, "aligned_with": "simpleitk" if use_sitk else "moments"}
    ctx.memo[key] = result
    return result


def brain_grid(centre: np.ndarray, spacing: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """The common brain grid (BRAIN_GRID_MM, RAS) at ``spacing`` mm, centred on ``centre``."""
    shape = tuple(int(round(mm / spacing)) for mm in BRAIN_GRID_MM)
    return shape, ras_grid_affine(spacing, centre - (np.array(shape) - 1) / 2.0 * spacing)  # type: ignore[return-value]


def load_brains(ctx: Context) -> dict[str, Any]:
    """The aligned brains on the common grid at ``ctx.downsample`` mm, with the alignment checks."""
    a = align_brains(ctx)
    spacing = float(ctx.downsample)
    shape, grid_affine = brain_grid(a["centre"], spacing)
    out: dict[str, dict] = {}
    for name, (img, lab) in a["raw"].items():
        st = a["stages"][name]
        out[name] = {
            "image": resample(img, shape, grid_affine, order=1, world_to_source=st["affine"]),
            "labels": resample(lab, shape, grid_affine, order=0, world_to_source=st["affine"]),
            "stage_labels": {s: resample(lab, shape, grid_affine, order=0, world_to_source=st[s]) for s in ("world", "moments")},
            "family": BRAIN_FILES[name][2],
        }
    # how much the alignment did: Dice between the two aseg brains and between the two tissue brains
    checks = {}
    for m, f, labels, what in (("bert", "vxm_subject", ASEG_EVALUATION_LABELS, "aseg 30-label mean Dice"), ("oasis_a", "oasis_b", list(TISSUE_NAMES), "tissue 2-class mean Dice")):
        row = {stage: mean_dice(out[m]["stage_labels"][stage], out[f]["stage_labels"][stage], labels) for stage in ("world", "moments")}
        row["affine"] = mean_dice(out[m]["labels"], out[f]["labels"], labels)
        checks[f"{m} vs {f}"] = {"what": what, "grid mm": spacing, **row}
    return {
        "grid": {"dims": list(shape), "spacing": [spacing] * 3, "orientation": "RAS", "affine": grid_affine.tolist()},
        "brains": out,
        "alignment": a["alignment"],
        "checks": checks,
        "aligned_with": a["aligned_with"],
    }


def _relabel(data: np.ndarray, table: dict[int, int]) -> np.ndarray:
    """Map label values through ``table``; values not in it become 0."""
    out = np.zeros(data.shape, dtype=np.int32)
    for src, dst in table.items():
        out[data == src] = dst
    return out


def build_oasis(ctx: Context, folder: Path) -> Built:
    b = load_brains(ctx)
    aff = np.array(b["grid"]["affine"])
    scans = []
    for name, v in b["brains"].items():
        write_nifti(folder / f"{name}.nii.gz", v["image"], aff, kind="image", description=f"llmed oasis-proxy {name}, aligned to vxm_subject")
        entry = {"name": name, "image": f"{name}.nii.gz", "source": BRAIN_FILES[name][0], "notes": b["alignment"][name]["orientationNotes"]}
        if v["family"] == "aseg":
            write_nifti(folder / f"{name}_aseg.nii.gz", v["labels"], aff, kind="labels", description=f"llmed oasis-proxy {name} aseg")
            entry["labels"] = f"{name}_aseg.nii.gz"
        else:
            write_nifti(folder / f"{name}_tissue.nii.gz", v["labels"], aff, kind="labels", description=f"llmed oasis-proxy {name} tissue classes")
            entry["tissueLabels"] = f"{name}_tissue.nii.gz"
        scans.append(entry)
    by = {s["name"]: s for s in scans}
    names = list(b["brains"])
    test = [("bert", "vxm_subject"), ("vxm_subject", "bert")]
    order = [(m, f) for m in names for f in names if m != f and (m, f) not in test] + test
    pairs = []
    for m, f in order:
        # a scan's labels are named wherever it appears (the pairs protocol takes a scan's labels from its first
        # appearance); a pair is scored only when both sides have labels
        p = {"moving": by[m]["image"], "fixed": by[f]["image"]}
        if by[m].get("labels"):
            p["movingLabels"] = by[m]["labels"]
        if by[f].get("labels"):
            p["fixedLabels"] = by[f]["labels"]
        pairs.append(p)
    aligned = "affinely aligned (SimpleITK)" if b["aligned_with"] == "simpleitk" else "only centre-of-mass + moments initialised (SimpleITK missing: not affinely registered)"
    title = f"OASIS proxy: 4 real brains (VoxelMorph subject, FreeSurfer bert, 2 OASIS-derived LapIRN brains), {aligned} to one RAS grid; aseg Dice on 30 labels (not the Learn2Reg OASIS dataset)"
    if ctx.downsample != 1:
        title += f"; {ctx.downsample} mm grid"
    return Built(
        title=title,
        description=(
            "All ordered pairs of the four brains; the two aseg brains (vxm_subject, bert) carry labels, so only "
            "their two pairs are scored by Dice, and they are the held-out test pairs (every subject also appears "
            "in training pairs: with four subjects this proxy checks the pipeline and compares methods, it does not "
            "measure generalisation). The two pairs before them (oasis_b -> bert, oasis_b -> oasis_a) validate and "
            "are not trained on; they carry no aseg pair, so the trainer picks checkpoints by their loss. The LapIRN pair's 2-class tissue maps (ids 901/902) are kept as *_tissue "
            "files. Images keep their own intensity units; the experiment's preprocessing normalises them."
        ),
        scans=scans,
        pairs=pairs,
        extra={
            "grid": b["grid"],
            "labels": {"evaluation": ASEG_EVALUATION_LABELS, "names": {str(k): v for k, v in ASEG_NAMES.items()}, "tissueNames": {str(k): v for k, v in TISSUE_NAMES.items()}},
            "alignment": {
                "reference": "vxm_subject",
                "scans": b["alignment"],
                "checks": b["checks"],
                "stages": "world = headers only; moments = centre-of-mass/moments initialisation; affine = final",
            },
        },
    )


def build_synthetic_warps(ctx: Context, folder: Path) -> Built:
    """Each aligned brain (2 mm × downsample) → itself warped by known smooth random fields."""
    sub = Context(ctx.source, ctx.out, downsample=2 * ctx.downsample, force=ctx.force, aligner=ctx.aligner, log=ctx.log, memo=ctx.memo)
    b = load_brains(sub)
    aff = np.array(b["grid"]["affine"])
    dims = b["grid"]["dims"]
    copies, max_disp, smooth = 5, 4.0, 12.0
    if ctx.downsample != 1:  # keep the deformation the same in millimetres
        max_disp, smooth = max_disp / ctx.downsample, max(smooth / ctx.downsample, 2.0)
    scans, pairs, fields = [], [], []
    for name, v in b["brains"].items():
        write_nifti(folder / f"{name}.nii.gz", v["image"], aff, kind="image", description=f"llmed synthetic-warps {name} (original)")
        entry = {"name": name, "image": f"{name}.nii.gz", "source": BRAIN_FILES[name][0]}
        if v["family"] == "aseg":
            write_nifti(folder / f"{name}_aseg.nii.gz", v["labels"], aff, kind="labels", description=f"llmed synthetic-warps {name} aseg")
            entry["labels"] = f"{name}_aseg.nii.gz"
        scans.append(entry)
    seeds = {(c, bi): 1000 * (bi + 1) + c for c in range(copies) for bi in range(len(b["brains"]))}
    made = dict(zip(seeds, smooth_random_fields(dims, [(max_disp, smooth, seed) for seed in seeds.values()])))  # one Node run
    for c in range(copies):
        for bi, (name, v) in enumerate(b["brains"].items()):
            seed = seeds[(c, bi)]
            u = made.pop((c, bi))
            warped = f"{name}_warp{c}"
            write_nifti(folder / f"{warped}.nii.gz", warp_volume(v["image"], u, labels=False), aff, kind="image", description=f"llmed synthetic-warps {name} warped by field seed {seed}")
            write_nifti(folder / f"{warped}_field.nii.gz", field_voxels_to_mm(u, aff), aff, kind="field", description=f"ground truth: {warped}(p) = {name}(p + u(p)), mm RAS")
            entry = {"name": warped, "image": f"{warped}.nii.gz", "warpedFrom": name, "fieldSeed": seed}
            pair = {"moving": f"{name}.nii.gz", "fixed": f"{warped}.nii.gz", "groundTruthField": f"{warped}_field.nii.gz"}
            if v["family"] == "aseg":
                write_nifti(folder / f"{warped}_aseg.nii.gz", warp_volume(v["labels"], u, labels=True), aff, kind="labels", description=f"llmed synthetic-warps {name} aseg warped (nearest)")
                entry["labels"] = f"{warped}_aseg.nii.gz"
                pair["movingLabels"], pair["fixedLabels"] = f"{name}_aseg.nii.gz", f"{warped}_aseg.nii.gz"
            scans.append(entry)
            pairs.append(pair)
            mag = np.sqrt((u.astype(np.float64) ** 2).sum(axis=0)) * b["grid"]["spacing"][0]
            fields.append(
                {
                    "field": f"{warped}_field.nii.gz",
                    "seed": seed,
                    "maxMm": round(float(mag.max()), 3),
                    "meanMm": round(float(mag.mean()), 3),
                    "nonpositiveJacobianPercent": round(jacobian_nonpositive_percent(u), 4),
                }
            )
    # hold out the last two copies of the two aseg brains for testing (4 pairs: the 'pairs' protocol's last
    # round(20/5)) and their copy before for validation (the 2 pairs before them, labelled, so checkpoints are
    # picked by Dice on pairs that are neither trained on nor tested); training sees the same subjects under
    # other fields only
    held = tuple(f"_warp{c}.nii.gz" for c in range(copies - 2, copies))
    test = [p for p in pairs if p.get("movingLabels") and p["fixed"].endswith(held)]
    val = [p for p in pairs if p.get("movingLabels") and p["fixed"].endswith(f"_warp{copies - 3}.nii.gz")]
    assert len(test) == protocol_test_count(len(pairs)), "the held-out pairs must be exactly the protocol's test pairs"
    assert len(val) == protocol_val_count(len(pairs)), "the validation pairs must be exactly the protocol's"
    pairs = [p for p in pairs if p not in test and p not in val] + val + test
    title = (
        f"Synthetic warps: 4 real brains of the OASIS proxy ({b['grid']['spacing'][0]:g} mm) under known smooth random "
        f"deformations, ground-truth fields saved (synthetic deformations; not a paper dataset)"
    )
    return Built(
        title=title,
        description=(
            "moving = an aligned real brain, fixed = the same brain warped by a known smooth random field u, "
            "fixed(p) = moving(p + u(p)); so the exact answer of moving → fixed is u, saved as groundTruthField "
            "(NIfTI DISPVECT, world millimetres, on the fixed grid) for endpoint error. Fields follow "
            "@llmed/imaging smoothRandomField (seeded white noise, Gaussian σ = smoothness/2 voxels, tapered at the "
            "border, scaled to the maximum displacement)."
        ),
        scans=scans,
        pairs=pairs,
        extra={
            "grid": b["grid"],
            "deformation": {
                "copiesPerBrain": copies,
                "maxDisplacementVoxels": max_disp,
                "smoothnessVoxels": smooth,
                "fields": fields,
                "convention": "fixed(p) = moving(p + u(p)); u in mm (RAS world vectors)",
            },
            "labels": {"evaluation": ASEG_EVALUATION_LABELS, "names": {str(k): v for k, v in ASEG_NAMES.items()}},
            "alignment": {"reference": "vxm_subject", "scans": b["alignment"], "checks": b["checks"]},
        },
    )


# =========================================================================================== abdomen

ABDOMEN_FILES = ("abdomen/example_mr_sm.nii.gz", "abdomen/example_seg_mr.nii.gz", "abdomen/example_ct_sm.nii.gz", "abdomen/example_seg.nii.gz")


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares similarity (rotation, isotropic scale, translation) taking points ``src`` (n×3) onto
    ``dst``; returns (4×4 matrix, RMS residual in mm). Umeyama (1991)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[2, 2] = -1
    rot = u @ s @ vt
    scale = float(np.trace(np.diag(d) @ s) / (xs**2).sum(axis=1).mean())
    m = np.eye(4)
    m[:3, :3] = scale * rot
    m[:3, 3] = mu_d - scale * rot @ mu_s
    res = dst - (src @ m[:3, :3].T + m[:3, 3])
    return m, float(np.sqrt((res**2).sum(axis=1).mean()))


def organ_centroids(lab: Volume, min_voxels: int = 20) -> dict[int, np.ndarray]:
    out = {}
    for v in np.unique(lab.data):
        if v == 0:
            continue
        idx = np.argwhere(lab.data == v)
        if len(idx) >= min_voxels:
            out[int(v)] = lab.affine[:3, :3] @ idx.mean(axis=0) + lab.affine[:3, 3]
    return out


def build_abdomen(ctx: Context, folder: Path) -> Built:
    mr_p, mrl_p, ct_p, ctl_p = (ctx.source / f for f in ABDOMEN_FILES)
    mr, mrl = read_volume(mr_p), read_volume(mrl_p, labels=True)
    ct, ctl = read_volume(ct_p), read_volume(ctl_p, labels=True)
    for img, lab in ((mr, mrl), (ct, ctl)):
        if img.shape != lab.shape:
            raise ProxyError(lab.file, f"label grid {lab.shape} differs from its image's {img.shape} ({Path(img.file).name})")
    mr_table = {mr_id: i + 1 for i, (_, _, mr_id) in enumerate(ABDOMEN_ORGANS)}
    ct_table = {ct_id: i + 1 for i, (_, ct_id, _) in enumerate(ABDOMEN_ORGANS)}
    mrl = Volume(_relabel(mrl.data, mr_table), mr.affine, mrl.file)
    ctl = Volume(_relabel(ctl.data, ct_table), ct.affine, ctl.file)

    # the common grid: the CT's (RAS), at downsample × its spacing
    ct_codes = axis_codes(ct.affine)
    if ct_codes != "RAS":
        nib = _nib()
        ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(ct.affine), nib.orientations.axcodes2ornt("RAS"))
        ct = Volume(nib.orientations.apply_orientation(ct.data, ornt), ct.affine @ nib.orientations.inv_ornt_aff(ornt, ct.shape), ct.file)
        ctl = Volume(nib.orientations.apply_orientation(ctl.data, ornt), ct.affine, ctl.file)
    f = ctx.downsample
    shape = tuple(max(1, int(round(n / f))) for n in ct.shape)
    grid_affine = ct.affine.copy()
    grid_affine[:3, :3] = ct.affine[:3, :3] * f
    grid_affine[:3, 3] = ct.affine[:3, 3] + ct.affine[:3, :3] @ (np.full(3, (f - 1) / 2.0))

    # similarity from CT organ centroids onto the MR's (CT world → MR world)
    cm, cc = organ_centroids(mrl), organ_centroids(ctl)
    shared = sorted(set(cm) & set(cc))
    if len(shared) < 4:
        raise ProxyError(mrl.file, f"only {len(shared)} organs of the shared table are present in both the MR and the CT labels; at least 4 are needed to fit the pre-alignment")
    src = np.array([cc[k] for k in shared])
    dst = np.array([cm[k] for k in shared])
    sim, rms = umeyama_similarity(src, dst)
    sim = round_matrix(sim)
    rms_before = float(np.sqrt(((dst - src) ** 2).sum(axis=1).mean()))

    ct_img = resample(ct, shape, grid_affine, order=1) if f != 1 else ct.data.astype(np.float32)
    ct_lab = resample(ctl, shape, grid_affine, order=0) if f != 1 else ctl.data
    mr_img = resample(mr, shape, grid_affine, order=1, world_to_source=sim)
    mr_lab = resample(mrl, shape, grid_affine, order=0, world_to_source=sim)
    organ_ids = list(range(1, len(ABDOMEN_ORGANS) + 1))
    dice_before = mean_dice(resample(mrl, shape, grid_affine, order=0), ct_lab, organ_ids)
    dice_after = mean_dice(mr_lab, ct_lab, organ_ids)

    desc = "llmed abdomen-mrct-proxy"
    write_nifti(folder / "ct.nii.gz", ct_img, grid_affine, kind="image", description=f"{desc} CT (HU)")
    write_nifti(folder / "ct_organs.nii.gz", ct_lab, grid_affine, kind="labels", description=f"{desc} CT organs (shared table)")
    write_nifti(folder / "mr.nii.gz", mr_img, grid_affine, kind="image", description=f"{desc} MR on the CT grid (centroid similarity)")
    write_nifti(folder / "mr_organs.nii.gz", mr_lab, grid_affine, kind="labels", description=f"{desc} MR organs (shared table)")
    scans = [
        {"name": "mr", "image": "mr.nii.gz", "labels": "mr_organs.nii.gz", "modality": "MR", "source": ABDOMEN_FILES[0]},
        {"name": "ct", "image": "ct.nii.gz", "labels": "ct_organs.nii.gz", "modality": "CT", "source": ABDOMEN_FILES[2]},
    ]
    pairs = []
    copies, max_disp, smooth = 4, 3.0, 8.0
    deformations = []
    fields = smooth_random_fields(shape, [(max_disp / f, max(smooth / f, 2.0), 500 + c) for c in range(copies)])
    for c in range(copies):
        seed = 500 + c
        u = fields[c]
        name = f"mr_deformed{c}"
        write_nifti(folder / f"{name}.nii.gz", warp_volume(mr_img, u, labels=False), grid_affine, kind="image", description=f"{desc} MR under synthetic deformation seed {seed}")
        write_nifti(folder / f"{name}_organs.nii.gz", warp_volume(mr_lab, u, labels=True), grid_affine, kind="labels", description=f"{desc} MR organs under deformation seed {seed}")
        scans.append(
            {"name": name, "image": f"{name}.nii.gz", "labels": f"{name}_organs.nii.gz", "modality": "MR", "synthetic": f"mr warped by a smooth random field (seed {seed}, max {max_disp:g} voxels)"}
        )
        pairs.append({"moving": f"{name}.nii.gz", "fixed": "ct.nii.gz", "movingLabels": f"{name}_organs.nii.gz", "fixedLabels": "ct_organs.nii.gz"})
        deformations.append(seed)
    pairs.append({"moving": "mr.nii.gz", "fixed": "ct.nii.gz", "movingLabels": "mr_organs.nii.gz", "fixedLabels": "ct_organs.nii.gz"})
    names = {str(i + 1): n for i, (n, _, _) in enumerate(ABDOMEN_ORGANS)}
    return Built(
        title=(
            "Abdomen MR-CT proxy: one MR and one CT of two different subjects (TotalSegmentator test volumes), organs on a "
            "shared 16-label table, MR pre-aligned by organ-centroid similarity (not the Learn2Reg Abdomen MR-CT dataset)"
        ),
        description=(
            "Test pair: the real MR → the real CT. Training pairs: the same MR under smooth random deformations → the CT "
            "(augmentation: one MR-CT pair exists). The MR is resampled onto the CT grid through a similarity transform "
            "fitted to matching organ centroids (the CT slab's header origin does not match the MR's, so headers alone do "
            "not align them). CT stays in HU; window it in the experiment's preprocessing (-180..400). Note: the slab's "
            "header equals the full example_ct's, although the slab is that CT's top 30 slices."
        ),
        scans=scans,
        pairs=pairs,
        extra={
            "grid": {"dims": list(shape), "spacing": [float(x) for x in np.sqrt((grid_affine[:3, :3] ** 2).sum(axis=0))], "orientation": "RAS", "affine": grid_affine.tolist()},
            "labels": {"evaluation": organ_ids, "names": names, "table": [{"id": i + 1, "name": n, "ct": c, "mr": m} for i, (n, c, m) in enumerate(ABDOMEN_ORGANS)]},
            "alignment": {
                "method": "similarity (Umeyama) fitted to matching organ centroids, CT world → MR world",
                "organs": [names[str(k)] for k in shared],
                "worldToSource": sim.tolist(),
                "centroidRmsMm": {"headers": round(rms_before, 2), "similarity": round(rms, 2)},
                "meanDice": {"headers": dice_before, "similarity": dice_after},
            },
            "deformation": {"seeds": deformations, "maxDisplacementVoxels": max_disp / f, "smoothnessVoxels": max(smooth / f, 2.0)},
        },
    )


# ============================================================================================== knee


def _knee_sources(ctx: Context) -> list[str]:
    folder = ctx.source / "knee-labels"
    files = sorted(p.name for p in folder.glob("*.nii.gz")) if folder.is_dir() else []
    if not files:
        return ["knee-labels/*.nii.gz"] if not folder.is_dir() else ["knee-labels/<at least one *_label.nii.gz>"]
    return [f"knee-labels/{n}" for n in files]


def knee_short_name(filename: str) -> str:
    m = re.search(r"(\d{6,})", filename)
    return f"knee{m.group(1)}" if m else re.sub(r"[^a-z0-9]+", "_", filename.lower().replace(".nii.gz", ""))


#: DESS-like class means (arbitrary units; water-excitation DESS: cartilage and fluid bright, marrow dark).
KNEE_MEANS = {0: (0.30, 0.04), 1: (0.12, 0.03), 2: (0.70, 0.06), 3: (0.12, 0.03), 4: (0.68, 0.06), 5: (0.12, 0.03), 6: (0.70, 0.06), 7: (0.85, 0.05), 8: (0.85, 0.05), 9: (0.85, 0.05)}


def synthesise_knee(labels: np.ndarray, rng: np.random.Generator, spacing_mm: float) -> tuple[np.ndarray, dict]:
    """A DESS-like image from a knee label map: per-label means, soft-tissue texture, partial-volume blur,
    a smooth multiplicative bias field and Rician noise. Returns int16-ready values (×1000) and the draws."""
    from scipy import ndimage

    vox = 0.7 / spacing_mm  # structure sizes are defined at 0.7 mm
    means = {v: float(rng.normal(m, s)) for v, (m, s) in KNEE_MEANS.items()}
    img = np.zeros(labels.shape, dtype=np.float32)
    for v, m in means.items():
        img[labels == v] = m
    texture = ndimage.gaussian_filter(rng.standard_normal(labels.shape).astype(np.float32), sigma=max(3.0 * vox, 0.5))
    texture /= max(float(texture.std()), 1e-6)
    amp = np.where(labels == 0, 0.08, 0.02).astype(np.float32)
    img = img + amp * texture
    img = ndimage.gaussian_filter(img, sigma=max(0.6 * vox, 0.3))
    coords = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in labels.shape], indexing="ij")
    coef = rng.normal(0, 0.12, size=9)
    x, y, z = coords
    log_bias = coef[0] * x + coef[1] * y + coef[2] * z + coef[3] * x * y + coef[4] * y * z + coef[5] * x * z + coef[6] * (x * x - 1 / 3) + coef[7] * (y * y - 1 / 3) + coef[8] * (z * z - 1 / 3)
    img = img * np.exp(log_bias).astype(np.float32)
    sigma_noise = 0.025
    n1 = rng.standard_normal(labels.shape).astype(np.float32) * sigma_noise
    n2 = rng.standard_normal(labels.shape).astype(np.float32) * sigma_noise
    img = np.sqrt((img + n1) ** 2 + n2**2)
    draws = {"means": {str(k): round(v, 4) for k, v in means.items()}, "biasCoefficients": [round(float(c), 4) for c in coef], "noiseSigma": sigma_noise}
    return np.clip(np.rint(img * 1000), 0, 32767), draws


def build_knee(ctx: Context, folder: Path) -> Built:
    files = [ctx.source / r for r in _knee_sources(ctx)]
    instances = 4
    spacing = 0.7 * ctx.downsample
    maps = []
    for path in files:
        lab = read_volume(path, labels=True)
        if lab.data.min() < 0 or lab.data.max() > 9:
            raise ProxyError(path, f"knee label values must be 0..9 (1 femur … 6 patellar cartilage, 7-9 lesions), found {int(lab.data.min())}..{int(lab.data.max())}")
        # same field of view and axes as the source (OAI volumes are oblique), isotropic voxels, closest to RAS
        ratio = spacing / lab.spacing
        shape = tuple(max(1, int(round(n / r))) for n, r in zip(lab.shape, ratio))
        to_source = np.eye(4)
        to_source[:3, :3] = np.diag(ratio)
        to_source[:3, 3] = 0.5 * ratio - 0.5  # outer faces of the two grids coincide
        own_axes = lab.affine @ to_source
        nib = _nib()
        ornt = nib.orientations.io_orientation(own_axes)
        grid_affine = own_axes @ nib.orientations.inv_ornt_aff(ornt, shape)
        ras_shape = tuple(shape[int(a)] for a in np.argsort(ornt[:, 0]))
        small = resample_labels_smooth(lab, ras_shape, grid_affine)
        name = knee_short_name(path.name)
        write_nifti(folder / f"{name}_labels.nii.gz", small, grid_affine, kind="labels", description=f"llmed knee-synthetic {name} labels (real OAI)")
        maps.append((name, small, grid_affine, path))
        ctx.log(f"  {name}: labels {lab.shape} → {small.shape} at {spacing:g} mm")
    scans, synth = [], {}
    for mi, (name, small, aff, path) in enumerate(maps):
        for inst in range(instances):
            rng = np.random.default_rng([20240, mi, inst])
            img, draws = synthesise_knee(small, rng, spacing)
            sname = f"{name}_synth{inst}"
            write_nifti(folder / f"{sname}.nii.gz", img, aff, kind="image-int16", description="llmed knee-synthetic: synthetic DESS-like image from real OAI labels")
            scans.append(
                {
                    "name": sname,
                    "image": f"{sname}.nii.gz",
                    "labels": f"{name}_labels.nii.gz",
                    "labelMap": name,
                    "instance": inst,
                    "source": str(path.relative_to(ctx.source)),
                    "synthetic": "synthetic DESS-like intensities on a real OAI label map (no OAI image)",
                }
            )
            synth[sname] = draws
    pairs_train, pairs_test = [], []
    last = instances - 1
    for m in scans:
        for f in scans:
            if m is f:
                continue
            p = {"moving": m["image"], "fixed": f["image"], "movingLabels": m["labels"], "fixedLabels": f["labels"]}
            if m["instance"] < last and f["instance"] < last:
                pairs_train.append(p)
            elif m["labelMap"] != f["labelMap"] and m["instance"] == last:
                pairs_test.append(p)
    n_test = protocol_test_count(len(pairs_train) + len(pairs_test))
    if n_test != len(pairs_test):
        ctx.log(f"  note: {len(pairs_test)} intended test pairs, the pairs protocol holds out {n_test}")
    return Built(
        title=(f"Knee synthetic: synthetic DESS-like intensities on real OAI label maps (no OAI image exists here; {instances} seeded instances per label map; not the OAI dataset)"),
        description=(
            "Images are synthesised from the real manual OAI label maps (femur, tibia, patella and their cartilages): "
            "per-label DESS-like mean intensities, soft-tissue texture, partial-volume blur, a smooth multiplicative "
            "bias field and Rician noise; each instance has its own seeded draw. Label maps are resampled to "
            f"{spacing:g} mm isotropic (each label's mask trilinearly, then the largest). Training pairs: all ordered "
            "pairs among instances 0-2; test pairs: between different label maps involving the last instance."
        ),
        scans=scans,
        pairs=pairs_train + pairs_test,
        extra={
            "labels": {"evaluation": [1, 2, 3, 4, 5, 6], "names": {str(k): v for k, v in KNEE_NAMES.items()}},
            "synthesis": {"instancesPerLabelMap": instances, "draws": synth, "seed": "numpy default_rng([20240, map, instance])", "classMeans": {str(k): list(v) for k, v in KNEE_MEANS.items()}},
            "licence": "knee label maps: no licence stated (internal testing only, see ../shared/data/README.md)",
        },
    )


# ========================================================================================== prostate

PROSTATE_FILES = ("prostate-mr-us/c0_moving_images.nii.gz", "prostate-mr-us/c0_moving_labels.nii.gz", "prostate-mr-us/c0_fixed_images.nii.gz", "prostate-mr-us/c0_fixed_labels.nii.gz")


def label_stack_to_map(path: Path) -> Volume:
    """A DeepReg label stack ([i, j, k] or [i, j, k, n] binary channels) → one label map: channel c → c + 1,
    later channels written over earlier ones (landmarks lie inside the gland)."""
    nib = _nib()
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj).astype(np.float32)
    except Exception as err:
        raise ProxyError(path, f"not a readable NIfTI file ({type(err).__name__}: {err})") from None
    if data.ndim == 3:
        data = data[..., None]
    if data.ndim != 4:
        raise ProxyError(path, f"expected a 3-D label map or a 4-D stack of label channels, got shape {data.shape}")
    out = np.zeros(data.shape[:3], dtype=np.int32)
    for c in range(data.shape[3]):
        out[data[..., c] > 0.5] = c + 1
    return Volume(out, np.asarray(img.affine, dtype=np.float64), str(path))


def build_prostate(ctx: Context, folder: Path) -> Built:
    mi, ml, fi, fl = (ctx.source / f for f in PROSTATE_FILES)
    for src, dst in ((mi, "mr.nii.gz"), (fi, "us.nii.gz")):
        read_volume(src)  # refuse an unreadable file before copying it
        shutil.copyfile(src, folder / dst)
    for src, dst, img in ((ml, "mr_labels.nii.gz", mi), (fl, "us_labels.nii.gz", fi)):
        lab = label_stack_to_map(src)
        ref = read_volume(img)
        if lab.shape != ref.shape:
            raise ProxyError(src, f"label grid {lab.shape} differs from its image's {ref.shape}")
        write_nifti(folder / dst, lab.data, ref.affine, kind="labels", description="llmed prostate-mr-us labels (1 gland, 2-3 landmarks)")
    return Built(
        title="Prostate MR-US pair: one real same-subject MR → transrectal ultrasound pair (DeepReg demo data, as is; not a paper dataset)",
        description=(
            "The images are the source files copied byte for byte, on their own grids (MR 64x64x60, US 44x59x41, "
            "0.4 mm); the 4-D label stacks become label maps (channel 0 gland → 1, channels 1 and 2, two landmarks → 2, 3). "
            "One pair: an evaluation pair, nothing to train on."
        ),
        scans=[
            {"name": "mr", "image": "mr.nii.gz", "labels": "mr_labels.nii.gz", "modality": "MR", "source": PROSTATE_FILES[0]},
            {"name": "us", "image": "us.nii.gz", "labels": "us_labels.nii.gz", "modality": "US", "source": PROSTATE_FILES[2]},
        ],
        pairs=[{"moving": "mr.nii.gz", "fixed": "us.nii.gz", "movingLabels": "mr_labels.nii.gz", "fixedLabels": "us_labels.nii.gz"}],
        extra={"labels": {"evaluation": [1, 2, 3], "names": {"1": "gland", "2": "landmark 1", "3": "landmark 2"}}},
    )


# ========================================================================================== registry


@dataclass(frozen=True)
class ProxySpec:
    build: Callable[[Context, Path], Built]
    sources: Callable[[Context], list[str]]
    aligns: bool = False
    #: Bumped when one proxy's output changes, so only that proxy is generated again.
    version: int = 1


PROXIES: dict[str, ProxySpec] = {
    "oasis-proxy": ProxySpec(build_oasis, _brain_sources, aligns=True),
    "abdomen-mrct-proxy": ProxySpec(build_abdomen, lambda ctx: list(ABDOMEN_FILES)),
    "knee-synthetic": ProxySpec(build_knee, _knee_sources),
    "prostate-mr-us": ProxySpec(build_prostate, lambda ctx: list(PROSTATE_FILES)),
    "synthetic-warps": ProxySpec(build_synthetic_warps, _brain_sources, aligns=True, version=2),  # v2: 5 copies, 4 test pairs
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description="Generate the benchmark's proxy datasets from the shared real volumes.")
    parser.add_argument("name", help=f"a proxy ({', '.join(PROXIES)}) or 'all'")
    parser.add_argument("--out", default=None, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--data", default=None, help=f"shared data folder (default ${SOURCE_ENV} or {DEFAULT_SOURCE})")
    parser.add_argument("--force", action="store_true", help="regenerate even when the folder is up to date")
    parser.add_argument("--downsample", type=int, default=1, choices=[1, 2, 4, 8], help="coarser output grids by this factor (tests use 4)")
    parser.add_argument("--aligner", choices=["auto", "simpleitk", "moments"], default="auto", help="brain pre-alignment: SimpleITK affine registration (auto when installed) or moments only")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    names = list(PROXIES) if args.name == "all" else [args.name]
    if any(n not in PROXIES for n in names):
        print(f"error[usage] unknown proxy '{args.name}': choose one of {', '.join(PROXIES)} or 'all'", file=sys.stderr)
        return 2
    source = Path(args.data or os.environ.get(SOURCE_ENV) or DEFAULT_SOURCE).expanduser().resolve()
    out = Path(args.out).expanduser().resolve() if args.out else DEFAULT_OUT
    log = (lambda m: None) if args.quiet else (lambda m: print(m, flush=True))
    ctx = Context(source, out, downsample=args.downsample, force=args.force, aligner=args.aligner, log=log)
    try:
        import torch

        torch.set_num_threads(min(2, torch.get_num_threads()))
        for n in names:
            log(f"{n}: generating from {source}")
            folder, skipped, seconds = generate(n, ctx)
            log(f"{n}: {'up to date' if skipped else f'written in {seconds:.1f} s'}: {folder}")
    except ProxyError as err:
        print(err.format(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
