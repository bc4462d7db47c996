"""The warp fixture shared with TypeScript: torch's ``grid_sample(align_corners=True)`` on a small volume
and field, the reference that ``warpTrilinear`` (packages/imaging/src/warp.ts) is checked against in
packages/imaging/tests/warp.test.ts.

The fixture file (packages/imaging/tests/fixtures/warp-grid-sample.json) holds, per case, the source
volume, the displacement field and torch's output, all flat in NIfTI order (i fastest, components
outermost), with the field in voxels of its own grid (DESIGN.md's convention). Here we check that the
stored output is still what this torch computes from the stored inputs (so the fixture cannot drift
from torch), that the inputs are the deterministic ones of ``make_cases`` and that llmed's own warp
(``llmed.nn.warp``, the trainer's) gives the same. Regenerate with
``.venv/bin/python bridge/python/tests/test_warp_grid_sample.py --write`` from the repo root.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[3]
FIXTURE = REPO / "packages" / "imaging" / "tests" / "fixtures" / "warp-grid-sample.json"
# Inputs are stored as float32 values; torch float32 of the same torch version reproduces its own output
# to rounding of the order 1e-7 (thread-count dependent summation order is not involved: no reductions).
TORCH_TOLERANCE = 1e-6


def _f32(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float32).ravel()]


def make_cases() -> list[dict]:
    """Two deterministic cases (no random generator, so any language can rebuild them): a field on the
    source's own grid, and a coarse field sampling a finer two-component source, as LLaMA-Reg's coarse
    warps do. Displacements reach ±1.5 voxels of a 5-7-voxel grid and ±0.8 of a 4-5-voxel grid, so some
    samples fall outside the source (zeros padding) and most fall inside."""
    cases = []
    for name, src_dims, field_dims, components, amplitude in (
        ("same-grid", (7, 6, 5), (7, 6, 5), 1, 1.5),
        ("coarse-field, 2 components", (9, 8, 7), (5, 4, 4), 2, 0.8),
    ):
        nx, ny, nz = src_dims
        mx, my, mz = field_dims
        k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
        src = np.stack([0.5 + 0.5 * np.sin(0.9 * i + 0.6 * j * (c + 1) - 0.4 * k) * np.cos(0.3 * (i - k) + c) for c in range(components)])
        k, j, i = np.meshgrid(np.arange(mz), np.arange(my), np.arange(mx), indexing="ij")
        field = np.stack([amplitude * np.sin(1.3 * i + 0.7 * j + 0.5 * k + 1.1 * c + 0.2) for c in range(3)])
        cases.append({"name": name, "srcDims": list(src_dims), "fieldDims": list(field_dims), "components": components, "src": _f32(src), "field": _f32(field)})
    return cases


def grid_sample_reference(case: dict, dtype=torch.float32) -> torch.Tensor:
    """torch's grid_sample on the case: output voxel p samples the source at (p + u) · (n_src − 1)/(n_field − 1),
    i.e. the normalised coordinate 2(p + u)/(n_field − 1) − 1, with align_corners=True and zeros padding."""
    nx, ny, nz = case["srcDims"]
    mx, my, mz = case["fieldDims"]
    src = torch.tensor(case["src"], dtype=dtype).view(1, case["components"], nz, ny, nx)
    field = torch.tensor(case["field"], dtype=dtype).view(3, mz, my, mx)
    k, j, i = torch.meshgrid(torch.arange(mz, dtype=dtype), torch.arange(my, dtype=dtype), torch.arange(mx, dtype=dtype), indexing="ij")
    grid = torch.stack([2 * (p + field[c]) / (n - 1) - 1 for c, (p, n) in enumerate(((i, mx), (j, my), (k, mz)))], dim=-1)
    return F.grid_sample(src, grid.unsqueeze(0), mode="bilinear", padding_mode="zeros", align_corners=True)[0]


def build_fixture() -> dict:
    cases = make_cases()
    for case in cases:
        case["expected"] = _f32(grid_sample_reference(case).numpy())
    return {
        "about": "written by bridge/python/tests/test_warp_grid_sample.py --write: torch.nn.functional.grid_sample("
        f"align_corners=True, zeros padding), torch {torch.__version__.split('+')[0]}, float32",
        "cases": cases,
    }


def _read_fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def test_fixture_inputs_are_the_deterministic_cases():
    stored = _read_fixture()["cases"]
    made = make_cases()
    assert [c["name"] for c in stored] == [c["name"] for c in made]
    for s, m in zip(stored, made):
        for key in ("srcDims", "fieldDims", "components"):
            assert s[key] == m[key], (s["name"], key)
        np.testing.assert_allclose(s["src"], m["src"], rtol=0, atol=1e-7, err_msg=s["name"])
        np.testing.assert_allclose(s["field"], m["field"], rtol=0, atol=1e-6, err_msg=s["name"])


def test_fixture_expected_output_is_torch_grid_sample():
    for case in _read_fixture()["cases"]:
        out = grid_sample_reference(case).numpy().ravel()
        assert out.shape == (len(case["expected"]),)
        np.testing.assert_allclose(out, case["expected"], rtol=0, atol=TORCH_TOLERANCE, err_msg=case["name"])
        # the fixture exercises zeros padding: some sample points fall outside the source, most inside
        mx, my, mz = case["fieldDims"]
        field = np.asarray(case["field"]).reshape(3, mz, my, mx)
        k, j, i = np.meshgrid(np.arange(mz), np.arange(my), np.arange(mx), indexing="ij")
        outside = np.zeros(field.shape[1:], dtype=bool)
        for c, (p, m, n) in enumerate(((i, mx, case["srcDims"][0]), (j, my, case["srcDims"][1]), (k, mz, case["srcDims"][2]))):
            x = (p + field[c]) * (n - 1) / (m - 1)
            outside |= (x < 0) | (x > n - 1)
        assert 0.05 < outside.mean() < 0.8, (case["name"], outside.mean())


def test_llmed_warp_is_grid_sample_on_the_fixture():
    from llmed.nn import warp

    for case in _read_fixture()["cases"]:
        nx, ny, nz = case["srcDims"]
        mx, my, mz = case["fieldDims"]
        src = torch.tensor(case["src"]).view(1, case["components"], nz, ny, nx)
        field = torch.tensor(case["field"]).view(1, 3, mz, my, mx)
        out = warp(src, field).numpy().ravel()
        np.testing.assert_allclose(out, case["expected"], rtol=0, atol=1e-5, err_msg=case["name"])


def test_float32_reference_is_within_rounding_of_float64():
    # The tolerance TypeScript is held to (1e-5) is above float32 rounding of the reference itself.
    for case in _read_fixture()["cases"]:
        f64 = grid_sample_reference(case, torch.float64).numpy().ravel()
        assert float(np.abs(f64 - np.asarray(case["expected"])).max()) < 1e-6, case["name"]


def _write_fixture() -> None:
    from llmed.checkpoint import atomic_write_text

    fixture = build_fixture()
    # One line per array keeps the file small and its diffs readable.
    lines = ["{", f'  "about": {json.dumps(fixture["about"])},', '  "cases": [']
    for n, case in enumerate(fixture["cases"]):
        fields = [f"      {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in case.items()]
        lines += ["    {", ",\n".join(fields), "    }" + ("," if n + 1 < len(fixture["cases"]) else "")]
    lines += ["  ]", "}"]
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == fixture and all(math.isfinite(v) for c in fixture["cases"] for v in c["expected"])
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(FIXTURE, text)
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: test_warp_grid_sample.py --write   (regenerates the shared warp fixture)")
    sys.path.insert(0, str(REPO / "bridge" / "python"))
    _write_fixture()
