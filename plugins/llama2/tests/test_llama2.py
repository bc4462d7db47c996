"""Tests of the llama2 family plugin: a tiny checkpoint of the family in the real format (written by the
family's own transformers classes, weights set by a formula) loads strictly, matches transformers' full
model layer by layer, and reproduces the values of tests/cases.json.

Run: ``cd bridge/python && ../../.venv/bin/python -m pytest ../../plugins/llama2/tests -q``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from llmed.plugin_cases import case_value as _case_array, read_cases
from llmed.testing import write_tiny_checkpoint


def case_value(value):
    """A case's tensor as torch (llmed.plugin_cases decodes to numpy)."""
    array = _case_array(value)
    return torch.from_numpy(array) if hasattr(array, "dtype") else array


PLUGIN = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PLUGIN / "python"))

from llmed_llama2 import FAMILY, build  # noqa: E402

CASES = read_cases(PLUGIN)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return Path(write_tiny_checkpoint(FAMILY, tmp_path_factory.mktemp("tiny-llama2"), fill="sine", layers=2)["dir"])


def options(checkpoint: Path, **given) -> dict:
    # every option, as the composer fills them in (build_decoder_stack keeps no defaults)
    base = dict(checkpoint=str(checkpoint), layers=[0], hiddenSize=64, numLayers=2, init="pretrained", trainable=False, attention="bidirectional", rope=False, finalNorm="none", lora=None)
    return {**base, **given}


def test_family_json_names_classes_transformers_has():
    config_cls, layer_cls, rotary_cls, norm_cls = FAMILY.classes()
    assert FAMILY.id == "llama2" and FAMILY.model_types
    assert FAMILY.cls("causalLM").__name__.endswith("ForCausalLM")
    assert layer_cls.__module__ == FAMILY.module


@pytest.mark.parametrize("layer", [0, 1])
def test_each_layer_loads_strictly_and_matches_transformers(checkpoint, layer):
    from transformers import AutoModel

    stack = build(options(checkpoint, layers=[layer], attention="causal", rope=True, finalNorm="checkpoint" if layer == 1 else "none"), {"tokens": {"width": 64}}).eval()
    # strict: exactly the layer's tensors were read, and they are the checkpoint's
    with safe_open(str(checkpoint / "model.safetensors"), "pt") as f:
        prefix = f"model.layers.{layer}."
        keys = sorted(k for k in f.keys() if k.startswith(prefix))
        assert stack.keys_read == sorted(keys + (["model.norm.weight"] if layer == 1 else []))
        for key in keys:
            assert torch.equal(stack.layers[0].state_dict()[key[len(prefix) :]], f.get_tensor(key)), key
    full = AutoModel.from_pretrained(str(checkpoint)).eval()
    x = torch.randn(1, 7, 64, generator=torch.Generator().manual_seed(layer))
    with torch.no_grad():
        hidden = full(inputs_embeds=x, output_hidden_states=True).hidden_states
        ours = stack(hidden[layer])
    assert (ours - hidden[layer + 1]).abs().max() < 1e-5


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(case, checkpoint):
    # the cases name the tiny checkpoint by the descriptor example's folder; it is built here instead
    stack = build(options(checkpoint, **{k: v for k, v in case["options"].items() if k != "checkpoint"}), {}).eval()
    with torch.no_grad():
        out = stack(case_value(case["inputs"]["tokens"]))
    want = case["expected"]["tokens"]
    assert list(out.shape) == want["shape"]
    if "data" in want or "sine" in want:
        diff = (out - case_value(want)).abs().max().item()
        assert diff <= case.get("tolerance", 1e-6), diff
