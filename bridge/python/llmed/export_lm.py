"""ONNX export of a causal language model's decoder with a KV cache, for generation in Node.

``export_decoder(model, out_dir)`` writes into ``out_dir``

    decoder.onnx          inputs_embeds (B, S, H) float32, attention_mask (B, P+S) int64, position_ids (B, S) int64,
                          past_key_values.{i}.key|value (B, kv_heads, P, head_dim) float32
                          → logits (B, S, V) float32, present.{i}.key|value (B, kv_heads, P+S, head_dim)
    decoder.onnx.data     the weights, when the graph would pass protobuf's 2 GB limit (or when asked)
    embed_tokens.f32      the input embedding table (V, H), raw little-endian float32: Node looks token ids up
                          itself, so text and image tokens enter the graph the same way (as embeddings)

The input and output names are the ones Hugging Face's ONNX exports of decoders use, so the graph reads
like theirs. Why embeddings and not ids: a report model feeds projected image tokens in place of the
``<im_patch>`` ids, and one graph then serves the bare LLM and the multimodal model alike.

The first step (prefill) passes a past of length 0; every later step passes the previous step's
``present`` tensors. Left padding works through ``attention_mask`` (0 on pads) and ``position_ids``
(counting from the first real token), exactly as transformers' ``generate`` does for a batch.

Parity (:func:`greedy_parity`): greedy decoding through onnxruntime must give the same token ids as torch
with its own KV cache on the same prompt, and the logits of every step must agree within ``tolerance``;
:func:`export_decoder` refuses to publish otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from llmed.atomic import publish_folder, recover_folder, staging_folder

# Weights above this many bytes go to an external data file: protobuf refuses messages over 2 GB.
EXTERNAL_DATA_BYTES = 1_800_000_000


class LMExportError(RuntimeError):
    """The decoder could not be exported faithfully (parity failed, or an unsupported model)."""


def cache_geometry(config: Any) -> dict[str, int]:
    """Layers, KV heads and head size of a transformers decoder config (text config of a multimodal one)."""
    config = getattr(config, "text_config", None) or config
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    return {
        "layers": int(config.num_hidden_layers),
        "kvHeads": int(getattr(config, "num_key_value_heads", None) or heads),
        "headDim": head_dim,
        "hidden": int(config.hidden_size),
        "vocab": int(config.vocab_size),
    }


class DecoderWithCache(nn.Module):
    """(inputs_embeds, attention_mask, position_ids, *past) → (logits, *present), past/present flattened
    as key₀, value₀, key₁, value₁, …: the calling convention the ONNX graph keeps."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.layers = cache_geometry(model.config)["layers"]

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for i in range(self.layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, past_key_values=cache, use_cache=True, return_dict=True)
        present: list[torch.Tensor] = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)


def io_names(layers: int) -> tuple[list[str], list[str]]:
    past = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    present = [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    return ["inputs_embeds", "attention_mask", "position_ids", *past], ["logits", *present]


def empty_past(geometry: dict[str, int], batch: int, length: int = 0, dtype=torch.float32) -> list[torch.Tensor]:
    shape = (batch, geometry["kvHeads"], length, geometry["headDim"])
    return [torch.zeros(shape, dtype=dtype) for _ in range(2 * geometry["layers"])]


def _export_graph(model: nn.Module, path: Path, opset: int, external: bool) -> None:
    geometry = cache_geometry(model.config)
    wrapper = DecoderWithCache(model).eval()
    inputs, outputs = io_names(geometry["layers"])
    # Example past and sequence lengths ≥ 2 keep the tracer from specialising either dimension to 1.
    batch, seq, past_len = 2, 3, 2
    embeds = torch.randn(batch, seq, geometry["hidden"])
    mask = torch.ones(batch, past_len + seq, dtype=torch.int64)
    positions = torch.arange(past_len, past_len + seq, dtype=torch.int64).expand(batch, seq).contiguous()
    past = [t.normal_() for t in empty_past(geometry, batch, past_len)]
    dynamic: dict[str, dict[int, str]] = {
        "inputs_embeds": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "total_sequence"},
        "position_ids": {0: "batch", 1: "sequence"},
        "logits": {0: "batch", 1: "sequence"},
    }
    for name in inputs[3:]:
        dynamic[name] = {0: "batch", 2: "past_sequence"}
    for name in outputs[1:]:
        dynamic[name] = {0: "batch", 2: "total_sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about every Python branch it freezes; the greedy parity check is what tells whether
        # a frozen branch matters (prefill and single-token steps, padded batches).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, (embeds, mask, positions, *past), str(path), input_names=inputs, output_names=outputs, dynamic_axes=dynamic, opset_version=opset, dynamo=False, do_constant_folding=True
        )
    if external:
        import onnx

        graph = onnx.load(str(path))
        onnx.save_model(graph, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=path.name + ".data", size_threshold=1024)


class _OrtDecoder:
    """The exported graph under onnxruntime (Python), stepping its own cache: the parity reference."""

    def __init__(self, path: Path, geometry: dict[str, int]):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.geometry = geometry
        self.inputs, self.outputs = io_names(geometry["layers"])

    def __call__(self, embeds: np.ndarray, mask: np.ndarray, positions: np.ndarray, past: list[np.ndarray]):
        feed = {"inputs_embeds": embeds, "attention_mask": mask, "position_ids": positions}
        feed.update(dict(zip(self.inputs[3:], past)))
        result = self.session.run(self.outputs, feed)
        return result[0], result[1:]


def greedy_parity(model: nn.Module, path: Path, prompts: Sequence[Sequence[int]], steps: int, tolerance: float = 1e-3) -> dict[str, Any]:
    """Greedy-decode ``prompts`` (token ids, batched with left padding) for ``steps`` tokens in torch (its KV
    cache) and in onnxruntime (the graph's), returning the ids of both and the largest logit difference."""
    geometry = cache_geometry(model.config)
    embed = model.get_input_embeddings()
    batch = len(prompts)
    width = max(len(p) for p in prompts)
    pad = 0
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], dtype=torch.int64)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.int64)
    ort_decoder = _OrtDecoder(path, geometry)
    torch_ids: list[list[int]] = [[] for _ in range(batch)]
    ort_ids: list[list[int]] = [[] for _ in range(batch)]
    worst = 0.0
    with torch.no_grad():
        # torch, with transformers' own cache
        from transformers import DynamicCache

        cache = DynamicCache(config=model.config)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        step_ids, step_mask, step_pos = ids, mask, positions
        torch_logits = []
        for _ in range(steps):
            out = model(inputs_embeds=embed(step_ids), attention_mask=step_mask, position_ids=step_pos, past_key_values=cache, use_cache=True)
            last = out.logits[:, -1].float()
            torch_logits.append(last.numpy())
            nxt = last.argmax(-1)
            for b in range(batch):
                torch_ids[b].append(int(nxt[b]))
            step_ids = nxt[:, None]
            step_pos = step_pos[:, -1:] + 1
            step_mask = torch.cat([step_mask, torch.ones(batch, 1, dtype=torch.int64)], 1)
        # onnxruntime, feeding the graph's present back as past
        past = [t.numpy() for t in empty_past(geometry, batch)]
        step_embeds = embed(ids).numpy()
        step_mask_np = mask.numpy()
        step_pos_np = positions.numpy()
        for s in range(steps):
            logits, past = ort_decoder(step_embeds, step_mask_np, step_pos_np, past)
            last = logits[:, -1]
            worst = max(worst, float(np.abs(last - torch_logits[s]).max()))
            nxt = last.argmax(-1)
            for b in range(batch):
                ort_ids[b].append(int(nxt[b]))
            step_embeds = embed(torch.from_numpy(nxt[:, None].astype(np.int64))).numpy()
            step_pos_np = step_pos_np[:, -1:] + 1
            step_mask_np = np.concatenate([step_mask_np, np.ones((batch, 1), dtype=np.int64)], 1)
    return {"torchIds": torch_ids, "ortIds": ort_ids, "maxLogitDifference": worst, "tolerance": tolerance, "sameTokens": torch_ids == ort_ids, "steps": steps, "prompts": [list(p) for p in prompts]}


def write_decoder(
    model: nn.Module, folder: Path, *, parity_prompts: Sequence[Sequence[int]], parity_steps: int = 8, tolerance: float = 1e-3, opset: int = 17, external_data: str = "auto"
) -> dict[str, Any]:
    """Write decoder.onnx (+ .data) and embed_tokens.f32 of ``model`` into ``folder`` and check greedy parity;
    raises :class:`LMExportError` when onnxruntime and torch disagree. Returns the decoder record."""
    model = model.float().eval()
    weight_bytes = sum(p.numel() * 4 for p in model.parameters())
    external = external_data == "always" or (external_data == "auto" and weight_bytes > EXTERNAL_DATA_BYTES)
    graph = folder / "decoder.onnx"
    _export_graph(model, graph, opset, external)
    table = model.get_input_embeddings().weight.detach().float().contiguous().numpy()
    table.astype("<f4").tofile(folder / "embed_tokens.f32")
    parity = greedy_parity(model, graph, parity_prompts, parity_steps, tolerance)
    if not parity["sameTokens"] or parity["maxLogitDifference"] > tolerance:
        raise LMExportError(
            f"onnxruntime and torch disagree on greedy decoding (same tokens: {parity['sameTokens']}, largest logit difference {parity['maxLogitDifference']:.3g} > {tolerance:g}); nothing was written"
        )
    return {
        "decoder": {"file": "decoder.onnx", "externalData": "decoder.onnx.data" if external else None, "opset": opset},
        "embeddings": {"file": "embed_tokens.f32", "dtype": "float32", "shape": list(table.shape)},
        "cache": cache_geometry(model.config),
        "parity": parity,
    }


def publish_staged(write, out_dir: str | os.PathLike[str]) -> Any:
    """Run ``write(staging_folder)`` and publish the folder to ``out_dir`` only when it returns
    (llmed.atomic: staged beside the target, the old folder renamed aside, never deleted first)."""
    out_dir = Path(out_dir)
    recover_folder(out_dir)
    staging = staging_folder(out_dir)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        result = write(staging)
        os.chmod(staging, 0o755)
        publish_folder(staging, out_dir)
        return result
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def export_decoder(
    model: nn.Module, out_dir: str | os.PathLike[str], *, parity_prompts: Sequence[Sequence[int]], parity_steps: int = 8, tolerance: float = 1e-3, opset: int = 17, external_data: str = "auto"
) -> dict[str, Any]:
    """Export ``model`` (a transformers causal LM, LoRA already merged) into ``out_dir``, published only after
    the greedy parity check passes; writes decoder.json and returns its content."""

    def write(folder: Path) -> dict[str, Any]:
        record = write_decoder(model, folder, parity_prompts=parity_prompts, parity_steps=parity_steps, tolerance=tolerance, opset=opset, external_data=external_data)
        (folder / "decoder.json").write_text(json.dumps(record, indent=1) + "\n")
        return record

    return publish_staged(write, out_dir)


def export_checkpoint(
    checkpoint: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, prompt: str = "The liver", parity_steps: int = 8, tolerance: float = 1e-3, opset: int = 17
) -> dict[str, Any]:
    """Export the causal LM of a Hugging Face checkpoint folder (weights, config and tokenizer files) as a
    decoder folder Node can generate from; the tokenizer files are copied beside the graph."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoint = Path(checkpoint)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        if not (checkpoint / name).exists():
            raise LMExportError(
                f"{checkpoint / name} is missing: a checkpoint folder needs config.json, the weights and tokenizer.json / tokenizer_config.json (npm run setup writes them for SmolLM2)"
            )
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32).eval()
    ids = tokenizer(prompt, add_special_tokens=False).input_ids
    fragment = export_decoder(model, out_dir, parity_prompts=[ids, ids[:1]], parity_steps=parity_steps, tolerance=tolerance, opset=opset)
    out_dir = Path(out_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        if (checkpoint / name).exists():
            shutil.copy2(checkpoint / name, out_dir / name)
    return fragment


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m llmed.export_lm", description="Export a checkpoint's causal LM decoder (KV cache) to ONNX")
    parser.add_argument("checkpoint", help="Hugging Face checkpoint folder (config.json, weights, tokenizer.json)")
    parser.add_argument("out_dir", help="folder to write (decoder.onnx, embed_tokens.f32, decoder.json, tokenizer files)")
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args(argv)
    try:
        fragment = export_checkpoint(args.checkpoint, args.out_dir, opset=args.opset)
    except LMExportError as err:
        print(f"error[checkpoint] {args.checkpoint}: {err}", file=sys.stderr)
        return 1
    parity = fragment["parity"]
    print(json.dumps({"out": str(args.out_dir), "sameTokens": parity["sameTokens"], "maxLogitDifference": parity["maxLogitDifference"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
