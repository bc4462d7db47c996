"""ONNX export (llmed.export): parity with torch, LoRA merged, half resolution, external data, atomicity.

Each test trains a tiny real model (the assembled LLaMA-Reg / LLM-Morph plugins with a tiny LLaMA
checkpoint) for a step or two on a tiny prepared dataset, exports it, and checks the export against
torch on a prepared pair: field difference below 1e-3 voxels, Dice of the warped labels equal to 4
decimals, and what the manifest promises (shapes, hashes, preprocessing, source run).
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from fixtures import NO_AUGMENT, make_spec, registered_plugins
from llmed.data import PreparedDataset
from llmed.export import FIELD_TOLERANCE_VOXELS, ExportError, export_run, main as export_main, sha256_file
from llmed.nn import resize_image, upsample_field, warp
from llmed.train import Trainer, load_run_model

PLUGINS = registered_plugins(Path(__file__).resolve().parents[3] / "plugins")

try:
    from test_train_engine import make_prepared
except ImportError:  # tests/ imported as a package
    from tests.test_train_engine import make_prepared

SPATIAL = (16, 16, 16)
CHANNELS = (2, 4, 4, 8, 8)
PREPROCESS = {"shape": list(SPATIAL), "orientation": "RAS", "moving": [{"op": "minmax"}], "fixed": [{"op": "minmax"}]}


def run_config(iterations: int, shape=SPATIAL, lr: float = 1e-3) -> dict:
    return {
        "name": "tiny",
        "method": "LLaMA-Reg",
        "description": "export test",
        "data": {
            "protocol": "pairs",
            "root": "unused",
            "title": "toy blobs (test fixture)",
            "howToGet": "built by the test",
            "preprocess": {**PREPROCESS, "shape": list(shape)},
            "labelNames": {"1": "core", "2": "shell"},
            "modality": {"moving": "MR", "fixed": "MR"},
        },
        "train": {
            "iterations": iterations,
            "lr": lr,
            "lrSchedule": "constant",
            "warmup": 0,
            "optimizer": "adam",
            "batchSize": 1,
            "amp": True,
            "seed": 1,
            "validateEvery": iterations,
            "checkpointEvery": iterations,
            "timeBudgetMinutes": 0,
            "augment": NO_AUGMENT,
        },
        "evaluate": {"metrics": ["dice", "hd95", "jacobian-nonpositive", "time"]},
        "export": {"opset": 20},
    }


def train_tiny_run(run: Path, spec: dict, prepared: Path, iterations: int = 1, lr: float = 1e-3) -> Path:
    run.mkdir(parents=True)
    config = run_config(iterations, tuple(json.loads((prepared / "pairs.json").read_text())["shape"]), lr)
    (run / "config.json").write_text(json.dumps(config))
    (run / "spec.json").write_text(json.dumps(spec))
    status = Trainer(run, spec, config, prepared, {"device": "cpu", "valPairs": 1}).run()
    assert status["state"] == "done", status.get("traceback")
    return run


def ort_field(export_dir: Path, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(export_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["field"], {"moving": moving.numpy(), "fixed": fixed.numpy()})[0])


def dice_mean(warped: torch.Tensor, fixed: torch.Tensor, labels) -> float:
    scores = []
    for v in labels:
        a, b = warped == v, fixed == v
        d = int(a.sum()) + int(b.sum())
        if d:
            scores.append(2 * int((a & b).sum()) / d)
    return sum(scores) / len(scores)


@pytest.fixture(scope="module")
def prepared16(tmp_path_factory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("export-prep16") / "prepared", shape_ijk=SPATIAL)


def test_export_matches_torch_and_the_manifest_says_what_inference_needs(tmp_path: Path, plugins_dir, tiny_checkpoint, prepared16: Path):
    spec = make_spec(plugins_dir, tiny_checkpoint("llama3"), spatial=SPATIAL, channels=CHANNELS, base=16)
    run = train_tiny_run(tmp_path / "runs" / "tiny" / "20260101-000000", spec, prepared16, iterations=2)
    manifest = export_run(run, "best", workspace_root=tmp_path, plugins=PLUGINS, log=lambda _m: None)
    out = run / "export"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx"]
    assert not list(run.glob("export.tmp-*")), "staging folder left behind"
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))

    # parity: written by the export, and re-measured here independently
    parity = manifest["parity"]
    assert parity["passed"] is True
    assert parity["maxAbsFieldDiffVoxels"] < FIELD_TOLERANCE_VOXELS
    assert parity["dice"]["labels"] == 2
    assert round(parity["dice"]["torch"], 4) == round(parity["dice"]["onnxruntime"], 4)
    data = PreparedDataset(prepared16)
    pair = data.splits["test"][0]
    assert parity["pair"]["moving"] == pair.moving and parity["pair"]["split"] == "test"
    batch = data.load_batch([pair], labels="map")
    model, _ = load_run_model(run, "best", plugins=PLUGINS, workspace_root=str(tmp_path))
    with torch.no_grad():
        reference = model.forward_field(batch["moving"], batch["fixed"])
    field = ort_field(out, batch["moving"], batch["fixed"])
    assert float((field - reference).abs().max()) < FIELD_TOLERANCE_VOXELS
    warped_t = warp(batch["moving_label_map"].float(), reference, mode="nearest").round().int()
    warped_o = warp(batch["moving_label_map"].float(), field, mode="nearest").round().int()
    assert round(dice_mean(warped_t, batch["fixed_label_map"], [1, 2]), 4) == round(dice_mean(warped_o, batch["fixed_label_map"], [1, 2]), 4)

    # the graph
    graph = onnx.load(str(out / "model.onnx"))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 20
    assert "GridSample" in {n.op_type for n in graph.graph.node}  # the decoder's internal warps
    assert all(i.data_type == onnx.TensorProto.FLOAT for i in graph.graph.initializer if i.data_type in (10, 11, 16))

    # what the manifest promises
    m = manifest["model"]
    assert m["sha256"] == sha256_file(out / "model.onnx") and m["bytes"] == (out / "model.onnx").stat().st_size
    assert m["externalData"] is None and m["opset"] >= 20 and m["dtype"] == "float32"
    assert [(i["name"], i["shape"]) for i in m["inputs"]] == [("moving", [1, 1, 16, 16, 16]), ("fixed", [1, 1, 16, 16, 16])]
    assert [(o["name"], o["shape"]) for o in m["outputs"]] == [("field", [1, 3, 16, 16, 16])]
    assert manifest["input"]["shape"] == list(SPATIAL) and manifest["prepared"]["shape"] == list(SPATIAL)
    assert manifest["resize"] is None
    assert manifest["data"]["preprocess"] == PREPROCESS
    assert manifest["data"]["labels"] == [1, 2] and manifest["data"]["labelNames"] == {"1": "core", "2": "shell"}
    assert manifest["data"]["title"] == "toy blobs (test fixture)"
    assert manifest["warp"]["alignCorners"] is True and manifest["warp"]["labels"] == "nearest"
    src = manifest["source"]
    assert src["checkpoint"] == "best" and src["step"] == 2 and src["run"] == str(run)
    assert src["weights"]["sha256"] == sha256_file(run / "checkpoints" / "best.safetensors")
    assert manifest["method"] == "LLaMA-Reg" and manifest["experiment"] == "tiny"


def test_lora_is_merged_into_the_exported_weights(tmp_path: Path, plugins_dir, tiny_checkpoint):
    # LLM-Morph's adapters instance-normalise over the tokens: a 32³ grid gives 8 of them (16³ only one).
    prepared = make_prepared(tmp_path / "prepared32", shape_ijk=(32, 32, 32))
    lora = {"rank": 4, "alpha": 8, "dropout": 0.0, "targets": ["q_proj", "k_proj", "v_proj"]}
    spec = make_spec(plugins_dir, tiny_checkpoint("llama3"), spatial=(32, 32, 32), channels=CHANNELS, base=16, style="llm-morph", llm_layers=(0, 1), lora=lora)
    run = train_tiny_run(tmp_path / "run", spec, prepared, iterations=1)
    # One Adam step leaves LoRA's B factors at ±lr: give them weight, as a long training run would,
    # so that a graph without them (an unmerged or dropped adapter) would be visibly wrong.
    ckpt = run / "checkpoints" / "best.safetensors"
    with safe_open(str(ckpt), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    lora_b = [k for k in tensors if "lora_B" in k]
    assert lora_b, "the checkpoint has no LoRA factors"
    generator = torch.Generator().manual_seed(0)
    for k in lora_b:
        tensors[k] = torch.randn(tensors[k].shape, generator=generator)
    # The stage adapters start silent (their upsamplers at 0; one step moves them by ±lr): open them too, or
    # the LLM path, and so LoRA, would barely reach the field.
    ups = [k for k in tensors if ".stages.ups." in k and k.endswith("weight")]
    assert ups, "the checkpoint has no stage-adapter upsamplers"
    for k in ups:
        tensors[k] = 0.3 * torch.randn(tensors[k].shape, generator=generator)
    save_file(tensors, str(ckpt), metadata=meta)

    manifest = export_run(run, "best", plugins=PLUGINS, log=lambda _m: None)
    assert manifest["model"]["loraLayersMerged"] == 2 * 3  # two LLM layers × q, k, v
    assert manifest["parity"]["passed"] and manifest["parity"]["maxAbsFieldDiffVoxels"] < FIELD_TOLERANCE_VOXELS
    graph = onnx.load(str(run / "export" / "model.onnx"))
    names = [i.name for i in graph.graph.initializer] + [n.name for n in graph.graph.node]
    assert not [n for n in names if "lora" in n.lower()], "LoRA tensors or nodes in the exported graph"

    # The export equals the unmerged (adapter-carrying) model, and the adapters matter.
    data = PreparedDataset(prepared)
    batch = data.load_batch([data.splits["test"][0]], labels="none")
    model, _ = load_run_model(run, "best", plugins=PLUGINS)
    with torch.no_grad():
        with_lora = model.forward_field(batch["moving"], batch["fixed"])
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.zero_()
        without_lora = model.forward_field(batch["moving"], batch["fixed"])
    exported = ort_field(run / "export", batch["moving"], batch["fixed"])
    to_merged = float((exported - with_lora).abs().max())
    to_unadapted = float((exported - without_lora).abs().max())
    assert to_merged < FIELD_TOLERANCE_VOXELS
    assert to_unadapted > FIELD_TOLERANCE_VOXELS and to_unadapted > 100 * to_merged


def test_half_resolution_export_with_external_data(tmp_path: Path, plugins_dir, tiny_checkpoint):
    prepared = make_prepared(tmp_path / "prepared32", shape_ijk=(32, 32, 32))
    spec = make_spec(plugins_dir, tiny_checkpoint("llama3"), spatial=SPATIAL, channels=CHANNELS, base=16)
    run = train_tiny_run(tmp_path / "run", spec, prepared, iterations=1)
    out = tmp_path / "elsewhere" / "export"
    manifest = export_run(run, "last", out, external_data="always", plugins=PLUGINS, log=lambda _m: None)
    assert manifest["input"]["shape"] == [16, 16, 16] and manifest["prepared"]["shape"] == [32, 32, 32]
    resize = manifest["resize"]
    assert resize["images"] == {**resize["images"], "from": [32, 32, 32], "to": [16, 16, 16]}
    assert resize["field"]["scale"] == pytest.approx([31 / 15] * 3)
    assert manifest["parity"]["fieldGrid"] == [32, 32, 32] and manifest["parity"]["passed"]
    ext = manifest["model"]["externalData"]
    assert ext is not None and (out / ext["file"]).is_file() and ext["sha256"] == sha256_file(out / ext["file"])
    assert manifest["source"]["checkpoint"] == "last"

    # inference as the runtime does it: resize, predict at 16³, upsample ×(31/15) to 32³
    data = PreparedDataset(prepared)
    batch = data.load_batch([data.splits["test"][0]], labels="none")
    small = [resize_image(batch[k], (16, 16, 16)) for k in ("moving", "fixed")]
    field = upsample_field(ort_field(out, *small), rescale=True, size=(32, 32, 32))
    model, _ = load_run_model(run, "last", plugins=PLUGINS)
    with torch.no_grad():
        reference = upsample_field(model.forward_field(*small), rescale=True, size=(32, 32, 32))
    assert field.shape == (1, 3, 32, 32, 32)
    assert float((field - reference).abs().max()) < FIELD_TOLERANCE_VOXELS


def test_a_failed_export_leaves_nothing_behind(tmp_path: Path, plugins_dir, tiny_checkpoint, prepared16: Path, capsys):
    spec = make_spec(plugins_dir, tiny_checkpoint("llama3"), spatial=SPATIAL, channels=CHANNELS, base=16)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(run_config(1)))
    (run / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(Exception) as err:
        export_run(run, "best", plugins=PLUGINS, log=lambda _m: None)
    assert getattr(err.value, "kind", None) == "checkpoint"
    assert not (run / "export").exists() and not list(run.glob("export.tmp-*"))

    # the command line reports it as one JSON line with the llmed error kind
    (tmp_path / "plugins.json").write_text(json.dumps(PLUGINS))
    assert export_main([str(run), "--json", "--plugins", str(tmp_path / "plugins.json")]) == 1
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["ok"] is False and result["kind"] == "checkpoint" and "checkpoints" in result["message"]


def test_an_opset_below_20_is_refused_before_any_work(tmp_path: Path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(run_config(1)))
    (run / "spec.json").write_text(json.dumps({"input": {"spatial": list(SPATIAL)}}))
    (run / "checkpoints" / "best.json").write_text(json.dumps({"format": "llmed-checkpoint-v1", "tag": "best", "step": 0, "tensors": "best.safetensors"}))
    (run / "checkpoints" / "best.safetensors").write_bytes(b"")
    with pytest.raises(ExportError) as err:
        export_run(run, "best", opset=16, plugins=PLUGINS, log=lambda _m: None)
    assert err.value.kind == "config" and "GridSample" in str(err.value)
    assert not (run / "export").exists()
