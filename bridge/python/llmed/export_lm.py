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

Two variants of the same graph (one code path, ``inputs=``):

    "embeds"  (default) as above, for llmed's runtime
    "ids"     ``input_ids`` (B, S) int64 in place of ``inputs_embeds``, the embedding lookup inside the graph:
              the layout of Hugging Face's own ONNX decoders, which transformers.js and optimum generate
              from. ``export_checkpoint(..., layout="hf")`` writes it as ``onnx/model.onnx`` beside
              config.json, generation_config.json and the tokenizer files (the folder transformers.js loads
              from ``env.localModelPath``).

int8 weights (``quantize="int8"``): every MatMul with a constant weight becomes onnxruntime's ``MatMulNBits``
with 8-bit weights (symmetric, one fp32 scale per ``INT8_BLOCK`` weights along the input dimension), so a token
reads about a quarter of the fp32 bytes. Norms, attention and the cache stay fp32. ``INT8_ACCURACY_LEVEL`` 4
lets onnxruntime multiply in int8 (activations quantised per block on the fly): at level 0 (fp32 compute) its
CPU kernel dequantises the weights on every call and decoded SmolLM2-135M about 6× slower than fp32. Its parity is judged
differently (see :func:`greedy_parity` with ``teacher_forced``): the logits may move by up to
``INT8_TOLERANCE`` and the argmax must agree with torch's on at least ``INT8_MIN_AGREEMENT`` of the steps.

The first step (prefill) passes a past of length 0; every later step passes the previous step's
``present`` tensors. Left padding works through ``attention_mask`` (0 on pads) and ``position_ids``
(counting from the first real token), exactly as transformers' ``generate`` does for a batch.

Parity (:func:`greedy_parity`): greedy decoding through onnxruntime must give the same token ids as torch
with its own KV cache on the same prompt, and the logits of every step must agree within ``tolerance``;
:func:`export_decoder` refuses to publish otherwise.
"""

from __future__ import annotations

import json
import logging
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

# int8 weights: block length along K, compute mode, and the parity it must keep against torch's fp32 model
# (teacher-forced, on the export's parity prompts). On SmolLM2-135M (4 real prompts × 32 steps) the largest
# logit difference was 1.16–1.51 and the argmax agreed on 97–100 % of the steps; see bench/results/text-decode.md.
INT8_BLOCK = 32
INT8_ACCURACY_LEVEL = 4
INT8_TOLERANCE = 2.0
INT8_MIN_AGREEMENT = 0.9


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


INPUTS = ("embeds", "ids")


def _check_inputs(inputs: str) -> None:
    if inputs not in INPUTS:
        raise LMExportError(f"inputs must be one of {', '.join(INPUTS)}, not {inputs!r}")


class DecoderWithCache(nn.Module):
    """(inputs_embeds | input_ids, attention_mask, position_ids, *past) → (logits, *present), past/present
    flattened as key₀, value₀, key₁, value₁, …: the calling convention the ONNX graph keeps."""

    def __init__(self, model: nn.Module, inputs: str = "embeds"):
        super().__init__()
        _check_inputs(inputs)
        self.model = model
        self.inputs = inputs
        self.layers = cache_geometry(model.config)["layers"]

    def forward(self, first: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for i in range(self.layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        given = {"input_ids": first} if self.inputs == "ids" else {"inputs_embeds": first}
        out = self.model(**given, attention_mask=attention_mask, position_ids=position_ids, past_key_values=cache, use_cache=True, return_dict=True)
        present: list[torch.Tensor] = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)


def io_names(layers: int, inputs: str = "embeds") -> tuple[list[str], list[str]]:
    past = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    present = [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    first = "input_ids" if inputs == "ids" else "inputs_embeds"
    return [first, "attention_mask", "position_ids", *past], ["logits", *present]


def empty_past(geometry: dict[str, int], batch: int, length: int = 0, dtype=torch.float32) -> list[torch.Tensor]:
    shape = (batch, geometry["kvHeads"], length, geometry["headDim"])
    return [torch.zeros(shape, dtype=dtype) for _ in range(2 * geometry["layers"])]


def _export_graph(model: nn.Module, path: Path, opset: int, external: bool, inputs: str = "embeds") -> None:
    geometry = cache_geometry(model.config)
    wrapper = DecoderWithCache(model, inputs).eval()
    names, outputs = io_names(geometry["layers"], inputs)
    # Example past and sequence lengths ≥ 2 keep the tracer from specialising either dimension to 1.
    batch, seq, past_len = 2, 3, 2
    first = torch.randint(0, geometry["vocab"], (batch, seq)) if inputs == "ids" else torch.randn(batch, seq, geometry["hidden"])
    mask = torch.ones(batch, past_len + seq, dtype=torch.int64)
    positions = torch.arange(past_len, past_len + seq, dtype=torch.int64).expand(batch, seq).contiguous()
    past = [t.normal_() for t in empty_past(geometry, batch, past_len)]
    dynamic: dict[str, dict[int, str]] = {
        names[0]: {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "total_sequence"},
        "position_ids": {0: "batch", 1: "sequence"},
        "logits": {0: "batch", 1: "sequence"},
    }
    for name in names[3:]:
        dynamic[name] = {0: "batch", 2: "past_sequence"}
    for name in outputs[1:]:
        dynamic[name] = {0: "batch", 2: "total_sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about every Python branch it freezes; the greedy parity check is what tells whether
        # a frozen branch matters (prefill and single-token steps, padded batches).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, (first, mask, positions, *past), str(path), input_names=names, output_names=outputs, dynamic_axes=dynamic, opset_version=opset, dynamo=False, do_constant_folding=True
        )
    if external:
        import onnx

        graph = onnx.load(str(path))
        onnx.save_model(graph, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=path.name + ".data", size_threshold=1024)


def quantize_int8(source: Path, target: Path, block_size: int = INT8_BLOCK, external: bool = False, accuracy_level: int = INT8_ACCURACY_LEVEL) -> dict[str, Any]:
    """int8 weights for an exported decoder: every MatMul with a constant weight becomes ``MatMulNBits``
    (bits 8, symmetric, ``block_size`` weights per scale, ``accuracy_level`` for its compute); norms,
    attention and the cache stay fp32."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)  # a line per node otherwise
    model = onnx.load(str(source))
    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True, bits=8, accuracy_level=accuracy_level)
    quantizer = MatMulNBitsQuantizer(model, bits=8, block_size=block_size, is_symmetric=True, accuracy_level=accuracy_level, algo_config=config)
    quantizer.process()
    graph = quantizer.model.model
    counts = {"MatMulNBits": sum(n.op_type == "MatMulNBits" for n in graph.graph.node), "MatMul": sum(n.op_type == "MatMul" for n in graph.graph.node)}
    if counts["MatMulNBits"] == 0:
        raise LMExportError(f"{source}: no MatMul with a constant weight was quantised (onnxruntime's MatMulNBits quantizer found none)")
    if external:
        onnx.save_model(graph, str(target), save_as_external_data=True, all_tensors_to_one_file=True, location=target.name + ".data", size_threshold=1024)
    else:
        onnx.save_model(graph, str(target))
    return {"scheme": "int8 weights (MatMulNBits, symmetric)", "bits": 8, "blockSize": block_size, "accuracyLevel": accuracy_level, "nodes": counts}


class _OrtDecoder:
    """The exported graph under onnxruntime (Python), stepping its own cache: the parity reference."""

    def __init__(self, path: Path, geometry: dict[str, int], inputs: str = "embeds"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.geometry = geometry
        self.inputs, self.outputs = io_names(geometry["layers"], inputs)

    def __call__(self, first: np.ndarray, mask: np.ndarray, positions: np.ndarray, past: list[np.ndarray]):
        """``first``: embeddings (B, S, H) float32, or token ids (B, S) int64 for an ``inputs="ids"`` graph."""
        feed = {self.inputs[0]: first, "attention_mask": mask, "position_ids": positions}
        feed.update(dict(zip(self.inputs[3:], past)))
        result = self.session.run(self.outputs, feed)
        return result[0], result[1:]


def greedy_parity(model: nn.Module, path: Path, prompts: Sequence[Sequence[int]], steps: int, tolerance: float = 1e-3, *, inputs: str = "embeds", teacher_forced: bool = False) -> dict[str, Any]:
    """Greedy-decode ``prompts`` (token ids, batched with left padding) for ``steps`` tokens in torch (its KV
    cache) and in onnxruntime (the graph's), returning the ids of both and the largest logit difference.

    Free-running (default), onnxruntime continues from its own choices: the ids must match exactly. With
    ``teacher_forced``, onnxruntime is fed torch's tokens, so every step's logits stay comparable after a
    near-tie flips: ``ortIds`` are then its argmax at each of torch's steps, and ``agreement`` the fraction of
    steps where it equals torch's (1.0 means free-running greedy would give torch's ids too)."""
    geometry = cache_geometry(model.config)
    embed = model.get_input_embeddings()
    batch = len(prompts)
    width = max(len(p) for p in prompts)
    pad = 0
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], dtype=torch.int64)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.int64)
    ort_decoder = _OrtDecoder(path, geometry, inputs)
    as_input = (lambda t: t.numpy()) if inputs == "ids" else (lambda t: embed(t).numpy())
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
        step_first = as_input(ids)
        step_mask_np = mask.numpy()
        step_pos_np = positions.numpy()
        for s in range(steps):
            logits, past = ort_decoder(step_first, step_mask_np, step_pos_np, past)
            last = logits[:, -1]
            worst = max(worst, float(np.abs(last - torch_logits[s]).max()))
            nxt = last.argmax(-1)
            for b in range(batch):
                ort_ids[b].append(int(nxt[b]))
            if teacher_forced:
                nxt = np.array([torch_ids[b][s] for b in range(batch)])
            step_first = as_input(torch.from_numpy(nxt[:, None].astype(np.int64)))
            step_pos_np = step_pos_np[:, -1:] + 1
            step_mask_np = np.concatenate([step_mask_np, np.ones((batch, 1), dtype=np.int64)], 1)
    agree = sum(t == o for tb, ob in zip(torch_ids, ort_ids) for t, o in zip(tb, ob)) / max(1, batch * steps)
    return {
        "torchIds": torch_ids,
        "ortIds": ort_ids,
        "maxLogitDifference": worst,
        "tolerance": tolerance,
        "sameTokens": torch_ids == ort_ids,
        "agreement": agree,
        "teacherForced": teacher_forced,
        "steps": steps,
        "prompts": [list(p) for p in prompts],
    }


def write_decoder(
    model: nn.Module,
    folder: Path,
    *,
    parity_prompts: Sequence[Sequence[int]],
    parity_steps: int = 8,
    tolerance: float | None = None,
    opset: int = 17,
    external_data: str = "auto",
    inputs: str = "embeds",
    quantize: str | None = None,
    graph_file: str = "decoder.onnx",
) -> dict[str, Any]:
    """Write ``graph_file`` (+ external data) and, for an ``inputs="embeds"`` graph, embed_tokens.f32 of
    ``model`` into ``folder`` and check parity; raises :class:`LMExportError` when onnxruntime and torch
    disagree. ``quantize="int8"`` writes the weight-only int8 graph (the fp32 one only transiently) and
    judges it teacher-forced against ``INT8_TOLERANCE`` / ``INT8_MIN_AGREEMENT``. Returns the decoder record."""
    _check_inputs(inputs)
    if quantize not in (None, "int8"):
        raise LMExportError(f"quantize must be int8 or none, not {quantize!r}")
    if tolerance is None:
        tolerance = INT8_TOLERANCE if quantize else 1e-3
    model = model.float().eval()
    weight_bytes = sum(p.numel() * 4 for p in model.parameters())
    external = external_data == "always" or (external_data == "auto" and weight_bytes > EXTERNAL_DATA_BYTES)
    graph = folder / graph_file
    graph.parent.mkdir(parents=True, exist_ok=True)
    quantization = None
    if quantize:
        fp32 = folder / "fp32-export" / "decoder.onnx"
        fp32.parent.mkdir()
        _export_graph(model, fp32, opset, external, inputs)
        quantization = quantize_int8(fp32, graph, external=external)
        shutil.rmtree(fp32.parent)
    else:
        _export_graph(model, graph, opset, external, inputs)
    embeddings = None
    if inputs == "embeds":
        table = model.get_input_embeddings().weight.detach().float().contiguous().numpy()
        table.astype("<f4").tofile(folder / "embed_tokens.f32")
        embeddings = {"file": "embed_tokens.f32", "dtype": "float32", "shape": list(table.shape)}
    parity = greedy_parity(model, graph, parity_prompts, parity_steps, tolerance, inputs=inputs, teacher_forced=bool(quantize))
    if quantize:
        parity["minAgreement"] = INT8_MIN_AGREEMENT
        if parity["agreement"] < INT8_MIN_AGREEMENT or parity["maxLogitDifference"] > tolerance:
            raise LMExportError(
                f"the int8 decoder strays from torch's fp32 model (argmax agreement {parity['agreement']:.2f} < {INT8_MIN_AGREEMENT:g} or largest logit "
                f"difference {parity['maxLogitDifference']:.3g} > {tolerance:g}, teacher-forced over {parity['steps']} steps); nothing was written"
            )
    elif not parity["sameTokens"] or parity["maxLogitDifference"] > tolerance:
        raise LMExportError(
            f"onnxruntime and torch disagree on greedy decoding (same tokens: {parity['sameTokens']}, largest logit difference {parity['maxLogitDifference']:.3g} > {tolerance:g}); nothing was written"
        )
    return {
        "decoder": {"file": graph_file, "externalData": graph_file + ".data" if external else None, "opset": opset, "inputs": inputs, "quantization": quantization},
        "embeddings": embeddings,
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


def export_decoder(model: nn.Module, out_dir: str | os.PathLike[str], *, parity_prompts: Sequence[Sequence[int]], **options: Any) -> dict[str, Any]:
    """Export ``model`` (a transformers causal LM, LoRA already merged) into ``out_dir``, published only after
    the parity check passes; writes decoder.json and returns its content. ``options``: those of
    :func:`write_decoder` (parity_steps, tolerance, opset, external_data, inputs, quantize, graph_file)."""

    def write(folder: Path) -> dict[str, Any]:
        record = write_decoder(model, folder, parity_prompts=parity_prompts, **options)
        (folder / "decoder.json").write_text(json.dumps(record, indent=1) + "\n")
        return record

    return publish_staged(write, out_dir)


LAYOUTS = ("llmed", "hf")


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    prompt: str = "The liver",
    parity_steps: int = 8,
    tolerance: float | None = None,
    opset: int = 17,
    layout: str = "llmed",
    quantize: str | None = None,
) -> dict[str, Any]:
    """Export the causal LM of a Hugging Face checkpoint folder (weights, config and tokenizer files) as a
    decoder folder, the tokenizer files copied beside the graph.

    ``layout="llmed"``: decoder.onnx taking ``inputs_embeds`` + embed_tokens.f32, what Node's runtime loads.
    ``layout="hf"``: the ``input_ids`` graph as onnx/model.onnx (onnx/model_int8.onnx when quantised) with
    config.json and generation_config.json, the folder transformers.js and optimum load a decoder from."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if layout not in LAYOUTS:
        raise LMExportError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    checkpoint = Path(checkpoint)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        if not (checkpoint / name).exists():
            raise LMExportError(
                f"{checkpoint / name} is missing: a checkpoint folder needs config.json, the weights and tokenizer.json / tokenizer_config.json (npm run setup writes them for SmolLM2)"
            )
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32).eval()
    ids = tokenizer(prompt, add_special_tokens=False).input_ids
    hf = layout == "hf"
    graph_file = ("onnx/model_int8.onnx" if quantize else "onnx/model.onnx") if hf else "decoder.onnx"
    options = {"parity_steps": parity_steps, "tolerance": tolerance, "opset": opset, "inputs": "ids" if hf else "embeds", "quantize": quantize, "graph_file": graph_file}
    fragment = export_decoder(model, out_dir, parity_prompts=[ids, ids[:1]], **options)
    out_dir = Path(out_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json") + (("config.json",) if hf else ()):
        if (checkpoint / name).exists():
            shutil.copy2(checkpoint / name, out_dir / name)
    if hf and not (out_dir / "generation_config.json").exists():
        model.generation_config.to_json_file(str(out_dir / "generation_config.json"))
    return fragment


def main(argv: list[str] | None = None) -> int:
    from .quiet import quiet_libraries

    quiet_libraries()
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m llmed.export_lm", description="Export a checkpoint's causal LM decoder (KV cache) to ONNX")
    parser.add_argument("checkpoint", help="Hugging Face checkpoint folder (config.json, weights, tokenizer.json)")
    parser.add_argument("out_dir", help="folder to write (decoder.onnx, embed_tokens.f32, decoder.json, tokenizer files)")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--layout", choices=LAYOUTS, default="llmed", help="llmed: inputs_embeds graph for llmed's runtime; hf: input_ids graph in onnx/ for transformers.js / optimum")
    parser.add_argument("--quantize", choices=["none", "int8"], default="none", help="int8: weight-only int8 MatMuls (MatMulNBits), its own parity tolerance")
    args = parser.parse_args(argv)
    try:
        fragment = export_checkpoint(args.checkpoint, args.out_dir, opset=args.opset, layout=args.layout, quantize=None if args.quantize == "none" else args.quantize)
    except LMExportError as err:
        print(f"error[checkpoint] {args.checkpoint}: {err}", file=sys.stderr)
        return 1
    parity = fragment["parity"]
    print(json.dumps({"out": str(args.out_dir), "sameTokens": parity["sameTokens"], "agreement": parity["agreement"], "maxLogitDifference": parity["maxLogitDifference"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
