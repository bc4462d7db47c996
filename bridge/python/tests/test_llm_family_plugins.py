"""Every LLM family plugin (a folder of plugins/ with a family.json), walked like the registry: a tiny
checkpoint of the family in the real on-disk format (written by the family's own transformers classes,
weights set by a formula) loads strictly — exactly the layer's tensors are read, and they are the
checkpoint's — and each layer matches transformers' full model. The family's cases.json values are run by
the case walker (test_plugin_cases.py). A new family plugin is tested here without a test file of its own.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from llmed.testing import write_tiny_checkpoint

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
FAMILY_DIRS = sorted(p.parent for p in PLUGINS.glob("*/family.json"))


def plugin_module(folder: Path):
    """The family plugin's python package (its FAMILY and build)."""
    root = folder / "python"
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    (package,) = [p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()]
    return importlib.import_module(package)


@pytest.fixture(scope="module", params=FAMILY_DIRS, ids=[p.name for p in FAMILY_DIRS])
def family(request, tmp_path_factory):
    module = plugin_module(request.param)
    ckpt = Path(write_tiny_checkpoint(module.FAMILY, tmp_path_factory.mktemp(f"tiny-{request.param.name}"), fill="sine", layers=2)["dir"])
    return request.param.name, module, ckpt


def options(checkpoint: Path, **given) -> dict:
    # every option, as the composer fills them in (build_decoder_stack keeps no defaults)
    base = dict(checkpoint=str(checkpoint), layers=[0], hiddenSize=64, numLayers=2, init="pretrained", trainable=False, attention="bidirectional", rope=False, finalNorm="none", lora=None)
    return {**base, **given}


def test_the_four_shipped_families_are_walked():
    assert {"llama2", "llama3", "phi3", "qwen2"} <= {p.name for p in FAMILY_DIRS}


def test_family_json_names_classes_transformers_has(family):
    name, module, _ = family
    FAMILY = module.FAMILY
    config_cls, layer_cls, rotary_cls, norm_cls = FAMILY.classes()
    assert FAMILY.id == name and FAMILY.model_types
    assert FAMILY.cls("causalLM").__name__.endswith("ForCausalLM")
    assert layer_cls.__module__ == FAMILY.module


@pytest.mark.parametrize("layer", [0, 1])
def test_each_layer_loads_strictly_and_matches_transformers(family, layer):
    from transformers import AutoModel

    _, module, checkpoint = family
    stack = module.build(options(checkpoint, layers=[layer], attention="causal", rope=True, finalNorm="checkpoint" if layer == 1 else "none"), {"tokens": {"width": 64}}).eval()
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
