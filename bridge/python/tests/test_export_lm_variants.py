"""The decoder exporter's two options beyond the default graph, on a tiny real checkpoint (a LLaMA with a
byte-level BPE tokenizer, memorised on a few sentences so greedy continuations are not one repeated token):

- ``layout="hf"``: an ``input_ids`` graph in onnx/model.onnx with config.json, generation_config.json and the
  tokenizer files — the folder transformers.js loads — whose logits are torch's, also for a left-padded batch
  stepped through the cache;
- ``quantize="int8"``: MatMulNBits with 8-bit weights, really quantised (smaller, logits moved but within the
  stated tolerance, argmax agreeing), and refused when the tolerance is set below what it reaches.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from llmed.export_lm import INT8_MIN_AGREEMENT, INT8_TOLERANCE, LMExportError, _OrtDecoder, cache_geometry, empty_past, export_checkpoint, main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from tiny_lm_export import build_tokenizer, memorise, tiny_llama_lm

    folder = tmp_path_factory.mktemp("tiny-lm")
    tokenizer = build_tokenizer(folder)
    model = tiny_llama_lm(tokenizer, hidden=64, intermediate=128, max_positions=128)
    memorise(model, tokenizer, steps=60)
    model.eval().save_pretrained(str(folder))
    return folder


def _model(checkpoint):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32).eval()


def _input_names(path):
    return [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]


def test_hf_layout_takes_input_ids_and_matches_torch(checkpoint, tmp_path):
    out = tmp_path / "hf"
    assert main([str(checkpoint), str(out), "--layout", "hf"]) == 0
    for name in ("onnx/model.onnx", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "decoder.json"):
        assert (out / name).is_file(), name
    assert not (out / "embed_tokens.f32").exists()  # the lookup is inside this graph
    record = json.loads((out / "decoder.json").read_text())
    assert record["decoder"]["inputs"] == "ids" and record["parity"]["sameTokens"]
    names = _input_names(out / "onnx/model.onnx")
    assert names[:3] == ["input_ids", "attention_mask", "position_ids"] and names[3] == "past_key_values.0.key"

    # Independently of the exporter's own check: a left-padded batch, prefill then two cached steps, each
    # step's last logits against torch run without a cache over the whole history.
    model = _model(checkpoint)
    geometry = cache_geometry(model.config)
    decoder = _OrtDecoder(out / "onnx/model.onnx", geometry, "ids")
    history = torch.tensor([[0, 0, 5, 9, 11], [7, 3, 8, 2, 6]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    step_ids, step_pos = history, (mask.cumsum(-1) - 1).clamp(min=0)
    past = [t.numpy() for t in empty_past(geometry, 2)]
    with torch.no_grad():
        for _ in range(3):
            logits, past = decoder(step_ids.numpy(), mask.numpy(), step_pos.numpy(), past)
            whole = model(input_ids=history, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
            assert np.abs(logits[:, -1] - whole[:, -1].numpy()).max() < 1e-4
            step_ids = torch.from_numpy(logits[:, -1].argmax(-1))[:, None]
            step_pos = step_pos[:, -1:] + 1
            history = torch.cat([history, step_ids], 1)
            mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.int64)], 1)


def test_int8_is_quantised_within_its_tolerance(checkpoint, tmp_path):
    fp32 = export_checkpoint(checkpoint, tmp_path / "fp32", prompt="The liver is")
    record = export_checkpoint(checkpoint, tmp_path / "int8", prompt="The liver is", quantize="int8")
    graph = onnx.load(str(tmp_path / "int8" / "decoder.onnx"))
    ops = [n.op_type for n in graph.graph.node]
    # every projection of both layers (q, k, v, o, gate, up, down) and the LM head
    assert ops.count("MatMulNBits") == 2 * 7 + 1 and record["decoder"]["quantization"]["bits"] == 8
    constants = {t.name for t in graph.graph.initializer}
    assert not [n.name for n in graph.graph.node if n.op_type == "MatMul" and any(i in constants for i in n.input)]  # none left in fp32
    size_fp32 = (tmp_path / "fp32" / "decoder.onnx").stat().st_size
    size_int8 = (tmp_path / "int8" / "decoder.onnx").stat().st_size
    assert size_int8 < 0.5 * size_fp32
    parity = record["parity"]
    assert parity["teacherForced"] and parity["agreement"] >= INT8_MIN_AGREEMENT and parity["tolerance"] == INT8_TOLERANCE
    # really quantised: the logits moved far more than the fp32 graph's do, but stay inside the tolerance
    assert parity["maxLogitDifference"] > 10 * max(fp32["parity"]["maxLogitDifference"], 1e-6)
    assert parity["maxLogitDifference"] <= INT8_TOLERANCE
    # the same inputs as the fp32 graph: llmed's runtime loads it unchanged
    assert _input_names(tmp_path / "int8" / "decoder.onnx") == _input_names(tmp_path / "fp32" / "decoder.onnx")


def test_int8_refused_below_what_it_reaches(checkpoint, tmp_path):
    with pytest.raises(LMExportError, match="int8 decoder strays"):
        export_checkpoint(checkpoint, tmp_path / "strict", prompt="The liver is", quantize="int8", tolerance=1e-6)
    assert not (tmp_path / "strict").exists()
