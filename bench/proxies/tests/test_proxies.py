"""Proxy datasets (``python bench/proxies/proxies.py``): determinism, relabelling, ground-truth fields, and the
cross-checks with TypeScript (the random fields handed over from smoothRandomField, readDisplacementField).

The generator runs on coarse grids here (``--downsample 8``, moments pre-alignment for the brains), so the
whole module takes well under a minute. Tests that read ``../shared/data`` skip, with the reason shown,
when that folder is absent; the TypeScript cross-checks, and generation itself (its random fields come from
@llmed/imaging), skip without Node/tsx.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parents[1]  # bench/proxies
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import proxies as P  # noqa: E402

SCRIPT = HERE / "proxies.py"
SOURCE = Path(os.environ.get(P.SOURCE_ENV) or P.DEFAULT_SOURCE)
TSX = REPO / "node_modules" / ".bin" / "tsx"
NAMES = ["prostate-mr-us", "abdomen-mrct-proxy", "knee-synthetic", "oasis-proxy", "synthetic-warps"]

if not SOURCE.is_dir():
    warnings.warn(f"test_proxies: {SOURCE} is absent; the proxy generation tests are skipped (they need the shared real volumes of ../shared/data/README.md)", stacklevel=1)

needs_data = pytest.mark.skipif(not SOURCE.is_dir(), reason=f"shared data folder {SOURCE} is absent (see ../shared/data/README.md)")
needs_tsx = pytest.mark.skipif(not TSX.exists(), reason="no node_modules/.bin/tsx: TypeScript cross-check skipped")


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"proxies.py {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def tree_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_tsx(script: str) -> str:
    """Run a TypeScript snippet (it may use ``await``) with tsx; returns its stdout."""
    wrapped = f"(async () => {{ {script} }})().catch((e) => {{ console.error(e); process.exit(1); }});"
    r = subprocess.run([str(TSX), "-e", wrapped], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"tsx failed:\n{r.stderr}"
    return r.stdout


IMAGING = json.dumps(str(REPO / "packages" / "imaging" / "src" / "index.ts"))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Every proxy generated twice by the same command into two folders (coarse grids, moments alignment)."""
    if not SOURCE.is_dir():
        pytest.skip(f"shared data folder {SOURCE} is absent (see ../shared/data/README.md)")
    if not TSX.exists():
        pytest.skip("no node_modules/.bin/tsx: the proxies' random fields are made by @llmed/imaging")
    outs = []
    for k in range(2):
        out = tmp_path_factory.mktemp(f"proxies{k}")
        run_cli("all", "--out", str(out), "--data", str(SOURCE), "--downsample", "8", "--aligner", "moments", "--quiet")
        outs.append(out)
    return outs


def load(folder: Path, name: str):
    import nibabel as nib

    return nib.load(str(folder / name))


# ----------------------------------------------------------------------------------------- the command


def test_missing_shared_data_is_one_clear_error(tmp_path):
    out = tmp_path / "out"
    r = run_cli("oasis-proxy", "--data", str(tmp_path / "nowhere"), "--out", str(out), check=False)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    first, hint = r.stderr.strip().splitlines()
    assert first == f"error[data] {tmp_path / 'nowhere'}: shared data folder does not exist"
    assert "hint:" in hint and "brain/" in hint and "--data" in hint
    assert not out.exists(), "a failed run must leave nothing behind"


def test_missing_file_is_named(tmp_path):
    (tmp_path / "abdomen").mkdir()
    (tmp_path / "abdomen" / "example_mr_sm.nii.gz").write_bytes(b"")
    r = run_cli("abdomen-mrct-proxy", "--data", str(tmp_path), "--out", str(tmp_path / "out"), check=False)
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == (f"error[data] {tmp_path}: abdomen-mrct-proxy needs abdomen/example_seg_mr.nii.gz, abdomen/example_ct_sm.nii.gz, abdomen/example_seg.nii.gz, which are missing")


def test_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(P.ProxyError) as err:
        P.read_volume(bad)
    assert err.value.where == str(bad) and "not a readable NIfTI" in err.value.message


def test_unknown_proxy_name():
    r = run_cli("no-such-proxy", check=False)
    assert r.returncode == 2 and "unknown proxy 'no-such-proxy'" in r.stderr


@needs_data
def test_same_command_gives_the_same_bytes(generated):
    a, b = (tree_hashes(out) for out in generated)
    assert a.keys() == b.keys()
    differ = [f for f in a if a[f] != b[f]]
    assert not differ, f"files differ between two runs of the same command: {differ}"
    assert len(a) > 40


@needs_data
def test_up_to_date_folders_are_left_alone(generated):
    out = generated[0]
    before = {p: p.stat().st_mtime_ns for p in (out / "prostate-mr-us").iterdir()}
    r = run_cli("prostate-mr-us", "--out", str(out), "--data", str(SOURCE), "--downsample", "8", "--aligner", "moments")
    assert "up to date" in r.stdout
    assert before == {p: p.stat().st_mtime_ns for p in (out / "prostate-mr-us").iterdir()}


@needs_data
@pytest.mark.parametrize("name", NAMES)
def test_dataset_json_describes_pairs_honestly(generated, name):
    folder = generated[0] / name
    ds = json.loads((folder / "dataset.json").read_text())
    plain = json.loads((folder / "pairs.json").read_text())
    assert ds["format"] == P.FORMAT and ds["name"] == name
    title = ds["title"].lower()
    assert "proxy" in title or "synthetic" in title or "as is" in title
    assert "not the " in title or "not a paper dataset" in title, "a proxy's title says which paper dataset it is not"
    # pairs.json is dataset.json's pair list without the extra keys, in the same order
    assert plain == [{k: p[k] for k in ("moving", "fixed", "movingLabels", "fixedLabels", "groundTruthField") if k in p} for p in ds["pairs"]]
    for p in ds["pairs"]:
        for key in ("moving", "fixed", "movingLabels", "fixedLabels", "groundTruthField"):
            if key in p:
                assert (folder / p[key]).is_file(), f"{name}: {key} {p[key]} missing"
    # the split marks the pairs the 'pairs' protocol of llmed data prepare holds out: the last max(1, round(n/5))
    # for testing, the 2 before them for validation (when at least 2 stay for training)
    n = len(ds["pairs"])
    n_test, n_val = P.protocol_test_count(n), P.protocol_val_count(n)
    assert [p["split"] for p in ds["pairs"]] == ["train"] * (n - n_test - n_val) + ["val"] * n_val + ["test"] * n_test


@needs_data
@needs_tsx
def test_llmed_pairs_protocol_reads_the_folders_as_dataset_json_says(generated):
    """The TypeScript side (`pairsForProtocol`, what `llmed data prepare` runs) holds out exactly the pairs that
    dataset.json marks as test and as validation, and every scan that has labels keeps them."""
    protocols = json.dumps(str(REPO / "packages" / "data" / "src" / "protocols.ts"))
    folders = json.dumps({n: str(generated[0] / n) for n in NAMES})
    out = run_tsx(f"""
      const {{ pairsForProtocol }} = await import({protocols});
      const result = {{}};
      for (const [name, root] of Object.entries({folders})) {{
        const cfg = {{ name, data: {{ protocol: 'pairs', manifest: 'pairs.json' }}, train: {{ seed: 0 }} }};
        const r = await pairsForProtocol(cfg, root);
        result[name] = {{ test: r.test, val: r.val, train: r.train.length, labelled: r.scans.filter((s) => s.labels).map((s) => s.name) }};
      }}
      process.stdout.write(JSON.stringify(result));
    """)
    got = json.loads(out)
    stem = lambda f: f.replace(".nii.gz", "")  # noqa: E731
    for name in NAMES:
        ds = json.loads((generated[0] / name / "dataset.json").read_text())
        folder = generated[0] / name

        def marked(split, ds=ds, folder=folder):
            return [
                {"moving": stem(p["moving"]), "fixed": stem(p["fixed"]), **({"groundTruthField": str(folder / p["groundTruthField"])} if p.get("groundTruthField") else {})}
                for p in ds["pairs"]
                if p["split"] == split
            ]

        assert got[name]["test"] == marked("test"), name
        assert got[name]["val"] == marked("val"), name
        assert got[name]["train"] == len(marked("train")), name
        assert sorted(got[name]["labelled"]) == sorted(s["name"] for s in ds["scans"] if s.get("labels")), name


# ------------------------------------------------------------------------------------------- contents


@needs_data
@needs_tsx
def test_abdomen_labels_are_relabelled_onto_the_shared_table(tmp_path):
    run_cli("abdomen-mrct-proxy", "--out", str(tmp_path), "--data", str(SOURCE), "--quiet")  # full grid: CT untouched
    folder = tmp_path / "abdomen-mrct-proxy"
    src_ct = np.asarray(load(SOURCE, "abdomen/example_seg.nii.gz").dataobj).astype(int)
    ct = np.asarray(load(folder, "ct_organs.nii.gz").dataobj).astype(int)
    mr = np.asarray(load(folder, "mr_organs.nii.gz").dataobj).astype(int)
    assert ct.shape == src_ct.shape
    for row, (organ, ct_id, _mr_id) in enumerate(P.ABDOMEN_ORGANS, start=1):
        assert np.array_equal(ct == row, src_ct == ct_id), f"{organ}: CT id {ct_id} should become {row}"
    assert set(np.unique(ct)) <= set(range(17)) and set(np.unique(mr)) <= set(range(17))
    # ids outside the table (e.g. CT 86, the MR's 46-49) are gone
    assert not np.isin(src_ct[ct == 0], [c for _, c, _ in P.ABDOMEN_ORGANS]).any()
    ds = json.loads((folder / "dataset.json").read_text())
    assert ds["labels"]["names"]["5"] == "liver" and ds["labels"]["table"][9] == {"id": 10, "name": "small_bowel", "ct": 18, "mr": 13}
    al = ds["alignment"]
    assert al["meanDice"]["similarity"] > al["meanDice"]["headers"] + 0.2
    assert al["centroidRmsMm"]["similarity"] < al["centroidRmsMm"]["headers"] / 4
    assert [p["split"] for p in ds["pairs"]][-1] == "test" and ds["pairs"][-1]["moving"] == "mr.nii.gz"


def test_relabel_maps_and_zeroes():
    data = np.array([[[0, 5, 7, 9]]])
    assert P._relabel(data, {5: 1, 9: 2}).tolist() == [[[0, 1, 0, 2]]]


@needs_data
def test_prostate_images_are_copied_and_label_stacks_become_maps(generated):
    folder = generated[0] / "prostate-mr-us"
    assert (folder / "mr.nii.gz").read_bytes() == (SOURCE / "prostate-mr-us/c0_moving_images.nii.gz").read_bytes()
    assert (folder / "us.nii.gz").read_bytes() == (SOURCE / "prostate-mr-us/c0_fixed_images.nii.gz").read_bytes()
    stack = load(SOURCE, "prostate-mr-us/c0_moving_labels.nii.gz").get_fdata()
    lab = np.asarray(load(folder, "mr_labels.nii.gz").dataobj)
    assert lab.shape == stack.shape[:3] and set(np.unique(lab)) == {0, 1, 2, 3}
    assert np.array_equal(lab == 3, stack[..., 2] > 0.5)
    assert np.array_equal(lab > 0, stack.max(axis=-1) > 0.5)


@needs_data
def test_oasis_proxy_orientation_and_labels(generated):
    folder = generated[0] / "oasis-proxy"
    ds = json.loads((folder / "dataset.json").read_text())
    notes = ds["alignment"]["scans"]
    assert any("LIA" in n for n in notes["vxm_subject"]["orientationNotes"])  # the VoxelMorph file's header says RAS
    assert notes["bert"]["orientationNotes"] == []
    assert "moments" in ds["title"].lower()  # this run had no SimpleITK registration, and the title says so
    for name in ("vxm_subject", "bert"):
        img = load(folder, f"{name}_aseg.nii.gz")
        assert "".join(__import__("nibabel").aff2axcodes(img.affine)) == "RAS"
        lab = np.asarray(img.dataobj)
        left, right = np.argwhere(np.isin(lab, [2, 3])).mean(axis=0), np.argwhere(np.isin(lab, [41, 42])).mean(axis=0)
        assert left[0] < right[0], f"{name}: left hemisphere must lie at lower RAS x"
    labelled = [p for p in ds["pairs"] if "movingLabels" in p and "fixedLabels" in p]
    assert {(p["moving"], p["fixed"]) for p in labelled} == {("bert.nii.gz", "vxm_subject.nii.gz"), ("vxm_subject.nii.gz", "bert.nii.gz")}
    assert all(p["split"] == "test" for p in labelled)
    tissue = np.asarray(load(folder, "oasis_a_tissue.nii.gz").dataobj)
    assert set(np.unique(tissue)) <= {0, *P.TISSUE_IDS.values()}


@needs_data
def test_knee_images_are_synthetic_and_say_so(generated):
    folder = generated[0] / "knee-synthetic"
    ds = json.loads((folder / "dataset.json").read_text())
    assert "synthetic dess-like intensities on real oai label maps" in ds["title"].lower()
    assert all("synthetic" in s["synthetic"] for s in ds["scans"])
    by_map: dict[str, list[np.ndarray]] = {}
    for s in ds["scans"]:
        img = load(folder, s["image"])
        assert b"synthetic" in bytes(img.header["descrip"])
        by_map.setdefault(s["labelMap"], []).append(np.asarray(img.dataobj))
        lab = np.asarray(load(folder, s["labels"]).dataobj)
        assert set(np.unique(lab)) <= set(range(10))
    for images in by_map.values():
        assert len(images) == 4 and not np.array_equal(images[0], images[1]), "instances must differ"
    test = [p for p in ds["pairs"] if p["split"] == "test"]
    assert all("_synth3" in p["moving"] for p in test) and len(test) == 8


# ------------------------------------------------------------------------------------ ground truth fields


@needs_data
def test_ground_truth_field_round_trip(generated):
    folder = generated[0] / "synthetic-warps"
    ds = json.loads((folder / "dataset.json").read_text())
    pair = next(p for p in ds["pairs"] if "movingLabels" in p)
    img = load(folder, pair["groundTruthField"])
    assert int(img.header["intent_code"]) == 1006 and img.shape[3:] == (1, 3)
    u = P.field_mm_to_voxels(np.asarray(img.dataobj), img.affine)
    # the saved field is the seeded field, exactly
    info = next(f for f in ds["deformation"]["fields"] if f["field"] == pair["groundTruthField"])
    d = ds["deformation"]
    expect = P.smooth_random_field(ds["grid"]["dims"], d["maxDisplacementVoxels"], d["smoothnessVoxels"], info["seed"])
    assert np.abs(u - expect).max() < 1e-4
    # and it is the answer: fixed(p) = moving(p + u(p)) for the image and the labels
    moving = load(folder, pair["moving"]).get_fdata(dtype=np.float32)
    fixed = load(folder, pair["fixed"]).get_fdata(dtype=np.float32)
    assert np.abs(P.warp_volume(moving, expect, labels=False) - fixed).max() < 1e-3 * max(1.0, float(np.abs(moving).max()))
    ml = np.asarray(load(folder, pair["movingLabels"]).dataobj)
    fl = np.asarray(load(folder, pair["fixedLabels"]).dataobj)
    assert np.array_equal(P.warp_volume(ml, expect, labels=True), fl)
    assert info["nonpositiveJacobianPercent"] == 0.0


@needs_data
def test_synthetic_warps_hold_out_labelled_deformations_with_their_true_fields(generated):
    folder = generated[0] / "synthetic-warps"
    plain = json.loads((folder / "pairs.json").read_text())
    ds = json.loads((folder / "dataset.json").read_text())
    assert len(plain) == 20 and all((folder / p["groundTruthField"]).is_file() for p in plain)
    test = [p for p in ds["pairs"] if p["split"] == "test"]
    # the 'pairs' protocol holds out the last round(20/5) = 4: the last two deformations of the two aseg brains
    assert plain[-4:] == [{k: p[k] for k in ("moving", "fixed", "movingLabels", "fixedLabels", "groundTruthField")} for p in test]
    assert sorted(p["fixed"].split("_warp")[1] for p in test) == ["3.nii.gz", "3.nii.gz", "4.nii.gz", "4.nii.gz"]
    train_fixed = {p["fixed"] for p in plain[:-4]}
    assert not train_fixed & {p["fixed"] for p in test}


def test_field_mm_voxel_conversion_round_trip():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)  # (3, K, J, I)
    affine = np.array([[0, -2.0, 0, 10], [0, 0, 1.5, -3], [-1.0, 0, 0, 4], [0, 0, 0, 1]])
    mm = P.field_voxels_to_mm(u, affine)
    assert mm.shape == (6, 5, 4, 3)
    assert np.allclose(mm[2, 3, 1], affine[:3, :3] @ u[:, 1, 3, 2], atol=1e-5)
    assert np.allclose(P.field_mm_to_voxels(mm, affine), u, atol=1e-5)


@needs_data
@needs_tsx
def test_typescript_reads_the_ground_truth_field_as_the_same_voxels(generated):
    folder = generated[0] / "synthetic-warps"
    ds = json.loads((folder / "dataset.json").read_text())
    field = folder / ds["pairs"][0]["groundTruthField"]
    out = run_tsx(f"""
      const im = await import({IMAGING});
      const v = await im.readDisplacementField({json.dumps(str(field))});
      process.stdout.write(JSON.stringify({{dims: v.dims, data: Array.from(v.data)}}));
    """)
    got = json.loads(out)
    nx, ny, nz = got["dims"]
    ts = np.array(got["data"], dtype=np.float64).reshape(3, nz, ny, nx)
    img = load(folder, ds["pairs"][0]["groundTruthField"])
    py = P.field_mm_to_voxels(np.asarray(img.dataobj), img.affine)
    assert np.abs(ts - py).max() < 1e-4


# ------------------------------------------------------------------------- TypeScript single implementation


@needs_tsx
def test_smooth_random_field_is_the_typescript_one():
    """The proxies' fields are made by @llmed/imaging and handed over through a file: byte order, layout and
    values arrive exactly as TypeScript computed them (compared here with the same call's JSON output)."""
    dims, opts = [7, 6, 5], {"maxDisplacement": 3, "smoothness": 4, "seed": 11}
    out = run_tsx(f"""
      const im = await import({IMAGING});
      const f = im.smoothRandomField({json.dumps(dims)}, {json.dumps(opts)});
      process.stdout.write(JSON.stringify({{field: Array.from(f)}}));
    """)
    got = json.loads(out)
    ts = np.array(got["field"], dtype=np.float32).reshape(3, dims[2], dims[1], dims[0])
    py = P.smooth_random_field(dims, opts["maxDisplacement"], opts["smoothness"], opts["seed"])
    assert py.dtype == np.float32 and py.shape == ts.shape
    assert np.array_equal(ts, py)
    # a batch gives each field as alone, in order
    both = P.smooth_random_fields(dims, [(3, 4, 12), (3, 4, 11)])
    assert np.array_equal(both[1], py) and not np.array_equal(both[0], py)
    assert np.abs(np.sqrt((py.astype(np.float64) ** 2).sum(axis=0)).max() - 3) < 1e-5


# ------------------------------------------------------------------------------------------ alignment


@needs_data
@pytest.mark.skipif(not P.have_simpleitk(), reason="SimpleITK not installed (bridge/python/requirements-bench.txt)")
def test_simpleitk_alignment_recovers_a_known_affine_deterministically():
    lab = P.read_volume(SOURCE / "brain/vxm_subject_aseg.nii.gz", labels=True)
    img = P.read_volume(SOURCE / "brain/vxm_subject_t1.nii.gz")
    affine, codes = P.reorient_from_anatomy(lab)
    assert codes == "LIA"
    img = P.coarsen(P.Volume(img.data, affine), 3.0)
    # a known transform: 6° about z, 4 % larger, shifted; the moving image is the brain seen through it
    a = np.deg2rad(6)
    known = np.eye(4)
    known[:3, :3] = 1.04 * np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    known[:3, 3] = [5.0, -4.0, 3.0]
    moving = P.Volume(P.resample(img, img.shape, img.affine, order=1, world_to_source=np.linalg.inv(known)), img.affine)
    first = P.align_simpleitk(img, moving)
    second = P.align_simpleitk(img, moving)
    assert np.array_equal(first["affine"], second["affine"]), "registration must be deterministic"
    got = first["affine"]
    assert np.abs(got[:3, :3] - known[:3, :3]).max() < 0.03
    assert np.abs(got[:3, 3] - known[:3, 3]).max() < 3.0
