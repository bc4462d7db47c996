"""llmed.llm: loading chosen decoder layers from local HF checkpoints, call semantics, freezing, LoRA.

The families are the first-party plugins' own (plugins/<id>/family.json); llmed.llm lists none."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import PLUGINS_DIR

import llmed.llm as llm_mod
from llmed.llm import CheckpointError, Family, LLMOptionsError, build_decoder_stack, merge_lora

# every first-party family plugin (llama2, llama3, phi3, qwen2): the folders that describe one
FAMILIES = sorted(p.parent.name for p in PLUGINS_DIR.glob("*/family.json"))
# The options the composer fills in that these tests leave at the schema's defaults (packages/core/src/llm.ts);
# hiddenSize is that of the tiny checkpoints. build_decoder_stack itself keeps no defaults.
BASE_OPTIONS = dict(hiddenSize=64, init="pretrained", trainable=False, attention="bidirectional", rope=False, finalNorm="none", lora=None)


def plugin_family(family_id: str) -> Family:
    return Family.from_json(PLUGINS_DIR / family_id / "family.json")


def build(family, options: dict, inputs: dict | None = None):
    """build_decoder_stack with a plugin's family (by id) or a Family, and the other options filled in."""
    fam = family if isinstance(family, Family) else plugin_family(family)
    return build_decoder_stack(fam, {**BASE_OPTIONS, **options}, inputs)


def hf_hidden_states(folder, x):
    from transformers import AutoModel

    full = AutoModel.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        return full(inputs_embeds=x, output_hidden_states=True).hidden_states


@pytest.mark.parametrize("family", FAMILIES)
def test_layers_match_transformers_full_model(family, tiny_checkpoint):
    folder = tiny_checkpoint(family, layers=3)
    torch.manual_seed(0)
    hs = hf_hidden_states(folder, torch.randn(2, 12, 64))
    for i in range(3):
        last = i == 2  # transformers applies the model's final norm to the last hidden state
        stack = build(family, dict(checkpoint=str(folder), layers=[i], hiddenSize=64, attention="causal", rope=True, finalNorm="checkpoint" if last else "none")).eval()
        with torch.no_grad():
            ours = stack(hs[i])
        assert torch.allclose(ours, hs[i + 1], atol=1e-5), (family, i, (ours - hs[i + 1]).abs().max())
        assert all(not p.requires_grad for p in stack.parameters())


@pytest.mark.parametrize("family", ["qwen2", "mistral"])
def test_causal_layers_honour_the_sliding_window_like_transformers(family, tmp_path):
    # 36 tokens, window 16: tokens past the 16th see only the last 16. Qwen2 slides from max_window_layers
    # on (layer 0 full, layers 1-2 sliding); Mistral slides on every layer.
    import transformers

    from fixtures import tiny_config

    torch.manual_seed(0)
    if family == "qwen2":
        config = tiny_config("qwen2", layers=3)
        config = transformers.Qwen2Config(**{**config.to_dict(), "use_sliding_window": True, "sliding_window": 16, "max_window_layers": 1, "layer_types": None})
        assert config.layer_types == ["full_attention", "sliding_attention", "sliding_attention"]
        model = transformers.Qwen2ForCausalLM(config)
    else:
        base = tiny_config("llama", layers=3).to_dict()
        keep = {k: base[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size", "vocab_size", "max_position_embeddings", "rms_norm_eps")}
        config = transformers.MistralConfig(**keep, sliding_window=16)
        model = transformers.MistralForCausalLM(config)
    model.save_pretrained(tmp_path)
    x = torch.randn(1, 36, 64)
    full = transformers.AutoModel.from_pretrained(str(tmp_path)).eval()
    with torch.no_grad():
        hs = full(inputs_embeds=x, output_hidden_states=True).hidden_states
    # Mistral is no first-party family: its Family comes from transformers' model type, as a new plugin's would
    fam = plugin_family(family) if family == "qwen2" else Family.from_model_type("mistral", "mistral")
    for i in range(3):
        stack = build(fam, dict(checkpoint=str(tmp_path), layers=[i], hiddenSize=64, attention="causal", rope=True, finalNorm="checkpoint" if i == 2 else "none")).eval()
        assert stack.windows == [None if (family == "qwen2" and i == 0) else 16]
        with torch.no_grad():
            ours = stack(hs[i])
        assert (ours - hs[i + 1]).abs().max() < 1e-5, (family, i, (ours - hs[i + 1]).abs().max())
    # and the window matters: without it the sliding layers differ from transformers
    stack = build(fam, dict(checkpoint=str(tmp_path), layers=[1], hiddenSize=64, attention="causal", rope=True)).eval()
    stack.windows = [None]
    with torch.no_grad():
        assert (stack(hs[1]) - hs[2]).abs().max() > 1e-3


def test_sharded_checkpoint_opens_only_the_shards_of_the_asked_layers(tiny_checkpoint, monkeypatch):
    folder = tiny_checkpoint("llama3", sharded=True, layers=3)
    weight_map = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    shards_of_layer1 = {f for k, f in weight_map.items() if k.startswith("model.layers.1.")}
    assert len(set(weight_map.values())) > len(shards_of_layer1)  # the fixture really spreads layers out

    opened = []
    real_open = llm_mod.safe_open

    def recording_open(path, *a, **kw):
        opened.append(str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(llm_mod, "safe_open", recording_open)
    stack = build("llama3", dict(checkpoint=str(folder), layers=[1], hiddenSize=64))
    assert {p.rsplit("/", 1)[-1] for p in opened} == shards_of_layer1
    assert set(stack.files_opened) == shards_of_layer1
    assert stack.keys_read == sorted(k for k in weight_map if k.startswith("model.layers.1."))
    assert len(stack.keys_read) == 9  # q, k, v, o, gate, up, down, two norms
    # loaded values are the checkpoint's
    from safetensors import safe_open

    key = "model.layers.1.self_attn.q_proj.weight"
    with safe_open(str(folder / weight_map[key]), "pt") as f:
        assert torch.equal(stack.layers[0].self_attn.q_proj.weight, f.get_tensor(key))


def test_bidirectional_attention_lets_later_tokens_change_earlier_outputs(tiny_checkpoint):
    folder = tiny_checkpoint("llama3")
    torch.manual_seed(1)
    x = torch.randn(1, 8, 64)
    y = x.clone()
    y[0, -1] += 1.0  # change only the last token
    bi = build("llama3", dict(checkpoint=str(folder), layers=[0], attention="bidirectional"))
    causal = build("llama3", dict(checkpoint=str(folder), layers=[0], attention="causal"))
    with torch.no_grad():
        assert not torch.allclose(bi(x)[0, 0], bi(y)[0, 0], atol=1e-6)
        assert torch.allclose(causal(x)[0, :-1], causal(y)[0, :-1], atol=1e-6)


def test_without_rope_bidirectional_layer_is_permutation_equivariant(tiny_checkpoint):
    # no rotary rotation and no mask: the layer is a set encoder, token order does not matter
    folder = tiny_checkpoint("qwen2")
    x = torch.randn(1, 10, 64)
    perm = torch.randperm(10)
    plain = build("qwen2", dict(checkpoint=str(folder), layers=[0, 1], rope=False))
    roped = build("qwen2", dict(checkpoint=str(folder), layers=[0, 1], rope=True))
    with torch.no_grad():
        assert torch.allclose(plain(x)[:, perm], plain(x[:, perm]), atol=1e-5)
        assert not torch.allclose(roped(x)[:, perm], roped(x[:, perm]), atol=1e-4)


def test_final_norm_ones_is_an_unweighted_rmsnorm(tiny_checkpoint):
    folder = tiny_checkpoint("llama2")
    stack = build("llama2", dict(checkpoint=str(folder), layers=[0], finalNorm="ones"))
    assert torch.equal(stack.final_norm.weight, torch.ones(64))
    with torch.no_grad():
        out = stack(torch.randn(2, 5, 64))
    assert torch.allclose(out.pow(2).mean(-1), torch.ones(2, 5), atol=1e-3)


def test_random_init_reads_no_tensors(tiny_checkpoint):
    folder = tiny_checkpoint("phi3")
    stack = build("phi3", dict(checkpoint=str(folder), layers=[0], init="random"))
    assert stack.keys_read == [] and stack.files_opened == []
    loaded = build("phi3", dict(checkpoint=str(folder), layers=[0]))
    assert not torch.equal(stack.layers[0].self_attn.qkv_proj.weight, loaded.layers[0].self_attn.qkv_proj.weight)


def test_trainable_option_unfreezes_the_layers(tiny_checkpoint):
    folder = tiny_checkpoint("llama3")
    stack = build("llama3", dict(checkpoint=str(folder), layers=[0], trainable=True))
    assert all(p.requires_grad for p in stack.parameters())


@pytest.mark.parametrize("family,targets", [("llama3", ["q_proj", "k_proj", "v_proj"]), ("phi3", ["qkv_proj"])])
def test_lora_trains_only_adapters_and_leaves_base_weights_bit_identical(family, targets, tiny_checkpoint):
    folder = tiny_checkpoint(family)
    torch.manual_seed(0)
    stack = build(family, dict(checkpoint=str(folder), layers=[0, 1], lora=dict(rank=4, alpha=8, dropout=0.0, targets=targets)))
    trainable = {n for n, p in stack.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert len(trainable) == 2 * 2 * len(targets)  # A and B per target per layer
    frozen_before = {n: p.detach().clone() for n, p in stack.named_parameters() if not p.requires_grad}
    x, target = torch.randn(2, 6, 64), torch.randn(2, 6, 64)
    opt = torch.optim.Adam([p for p in stack.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(4):
        opt.zero_grad()
        loss = torch.mean((stack(x) - target) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for n, p in stack.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n]), n
    # merging folds the adapters into the base weights: same function, plain nn.Linear layers again
    with torch.no_grad():
        before = stack(x)
    assert merge_lora(stack) == 2 * len(targets)
    assert not any("lora_" in n for n, _ in stack.named_parameters())
    with torch.no_grad():
        assert torch.allclose(stack(x), before, atol=1e-5)


def test_lora_rejects_targets_the_family_does_not_have(tiny_checkpoint):
    folder = tiny_checkpoint("phi3")
    with pytest.raises(LLMOptionsError, match="q_proj"):
        build("phi3", dict(checkpoint=str(folder), layers=[0], lora=dict(rank=2, alpha=2, dropout=0.0, targets=["q_proj"])))


def test_missing_folder_says_what_to_put_where(tmp_path):
    missing = tmp_path / "Meta-Llama-3-8B"
    with pytest.raises(CheckpointError) as e:
        build("llama3", dict(checkpoint=str(missing), layers=[15]))
    msg = str(e.value)
    assert str(missing) in msg and "config.json" in msg and ".safetensors" in msg and "meta-llama/Meta-Llama-3-8B" in msg
    assert e.value.kind == "checkpoint"


def test_missing_shard_is_named(tiny_checkpoint, tmp_path):
    src = tiny_checkpoint("llama3", sharded=True, layers=3)
    folder = tmp_path / "ckpt"
    shutil.copytree(src, folder)
    weight_map = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    shard = weight_map["model.layers.2.mlp.up_proj.weight"]
    (folder / shard).unlink()
    build("llama3", dict(checkpoint=str(folder), layers=[0]))  # layer 0 does not need it
    with pytest.raises(CheckpointError, match=shard):
        build("llama3", dict(checkpoint=str(folder), layers=[2]))


def test_layer_index_out_of_range_and_hidden_size_mismatch(tiny_checkpoint):
    folder = tiny_checkpoint("qwen2")
    with pytest.raises(LLMOptionsError, match=r"layer index 5 is out of range.*2 layers"):
        build("qwen2", dict(checkpoint=str(folder), layers=[5]))
    with pytest.raises(LLMOptionsError, match="hiddenSize 3584 .* hidden_size is 64"):
        build("qwen2", dict(checkpoint=str(folder), layers=[0], hiddenSize=3584))
    with pytest.raises(LLMOptionsError, match="32 wide"):
        build("qwen2", dict(checkpoint=str(folder), layers=[0]), {"tokens": {"width": 32}})


def test_wrong_family_and_incomplete_layer_are_clear_errors(tiny_checkpoint, tmp_path):
    folder = tiny_checkpoint("qwen2")
    with pytest.raises(CheckpointError, match="model_type 'qwen2'.*not a Phi-3"):
        build("phi3", dict(checkpoint=str(folder), layers=[0]))
    # a checkpoint whose layer lacks a tensor: strict loading names the missing key
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    tensors = load_file(str(broken / "model.safetensors"))
    del tensors["model.layers.0.self_attn.k_proj.bias"]
    save_file(tensors, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"missing self_attn\.k_proj\.bias"):
        build("qwen2", dict(checkpoint=str(broken), layers=[0]))


def test_relative_checkpoint_resolves_against_the_workspace_root(tiny_checkpoint, monkeypatch):
    folder = tiny_checkpoint("llama2")
    monkeypatch.setenv("LLMED_WORKSPACE", str(folder.parent))
    stack = build("llama2", dict(checkpoint=folder.name, layers=[1]))
    assert stack.checkpoint == str(folder)


def test_fixture_cli_writes_a_loadable_checkpoint(tmp_path):
    # the TypeScript tests call this CLI to get tiny checkpoints of their own
    import subprocess
    import sys
    from pathlib import Path

    python_root = Path(__file__).resolve().parents[1]
    out = tmp_path / "tiny-phi3"
    r = subprocess.run([sys.executable, "-m", "tests.fixtures", "phi3", str(out), "--sharded", "--layers", "2"], cwd=python_root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["family"] == "phi3" and info["hidden_size"] == 64 and "model.safetensors.index.json" in info["files"]
    stack = build("phi3", dict(checkpoint=str(out), layers=[1], hiddenSize=64))
    assert stack.layers[0].self_attn.qkv_proj.weight.shape == (64 + 2 * 32, 64)


def test_third_party_families_derive_from_the_model_type_or_say_why_not(tmp_path):
    from fixtures import UnknownFamily, build_tiny_checkpoint, tiny_config

    # a family named after its transformers model type gets a tiny checkpoint and builds with no Python of its own
    build_tiny_checkpoint("mistral", tmp_path / "mistral")
    fam = llm_mod.Family.from_model_type("mistral", "mistral")
    assert (fam.class_name("decoderLayer"), fam.model_types) == ("MistralDecoderLayer", ("mistral",))
    stack = build(fam, dict(checkpoint=str(tmp_path / "mistral"), layers=[0], hiddenSize=64))
    assert stack(torch.randn(1, 5, 64)).shape == (1, 5, 64)
    assert not hasattr(llm_mod, "FAMILIES")  # no table of families: a family is an object its plugin passes
    # one transformers does not know: the plugin walk skips it, building it says what to do
    with pytest.raises(UnknownFamily):
        tiny_config("notatransformer")
    with pytest.raises(LLMOptionsError, match="transformers has no model type 'notatransformer'"):
        llm_mod.Family.from_model_type("odd", "notatransformer")


def test_one_checkpoint_error_whose_file_at_fault_reaches_the_bridge_result(tiny_checkpoint, tmp_path):
    import llmed.checkpoint
    from llmed.api import structured

    # one class: an LLM checkpoint's error and a run checkpoint's error are caught by the same except
    assert CheckpointError is llmed.checkpoint.CheckpointError
    broken = tmp_path / "broken-llama"
    shutil.copytree(tiny_checkpoint("llama2"), broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError) as e:
        build("llama2", dict(checkpoint=str(broken), layers=[0]))
    assert e.value.where == str(broken / "config.json") and e.value.path == e.value.where
    # the bridge's structured result carries it (TypeScript's LlmedError.where comes from this field)
    result = structured(lambda: build("llama2", dict(checkpoint=str(broken), layers=[0])))()
    assert result["ok"] is False and result["kind"] == "checkpoint" and result["where"] == str(broken / "config.json")
    # an options error is the config's fault: no `where` (TypeScript names the config file), the folder kept as `path`
    with pytest.raises(LLMOptionsError) as o:
        build("llama2", dict(checkpoint=str(tiny_checkpoint("llama2")), layers=[7]))
    assert o.value.where is None and o.value.path == str(tiny_checkpoint("llama2"))
    assert isinstance(o.value, llmed.checkpoint.CheckpointError)


def test_a_family_is_read_from_its_plugin_folder_and_a_broken_description_names_its_file(tmp_path):
    from llmed.llm import FamilyError

    fam = plugin_family("phi3")
    assert fam.model_types == ("phi3", "phi3_v") and fam.lora_targets == ("qkv_proj",)
    assert fam.cls("decoderLayer").__name__ == "Phi3DecoderLayer" and fam.cls("causalLM").__name__ == "Phi3ForCausalLM"
    assert fam.source == str(PLUGINS_DIR / "phi3" / "family.json")
    described = json.loads((PLUGINS_DIR / "phi3" / "family.json").read_text())
    broken = tmp_path / "family.json"
    del described["transformers"]["decoderLayer"]
    broken.write_text(json.dumps(described))
    with pytest.raises(FamilyError, match=r"transformers\.decoderLayer") as e:
        Family.from_json(broken)
    assert e.value.where == str(broken) and e.value.kind == "plugin"
    described["transformers"]["decoderLayer"] = "Phi3NoSuchLayer"
    broken.write_text(json.dumps(described))
    with pytest.raises(FamilyError, match="has no Phi3NoSuchLayer"):
        Family.from_json(broken).classes()
    with pytest.raises(LLMOptionsError, match="takes the plugin's Family object"):
        build_decoder_stack("phi3", {})
    with pytest.raises(LLMOptionsError, match="lack .*attention"):
        build_decoder_stack(fam, {"checkpoint": str(tmp_path), "layers": [0], "hiddenSize": 64})
