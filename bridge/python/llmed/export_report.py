"""ONNX export of a report generator (vision model + causal-LM decoder), with its manifest and parity.

``export_report_model(vision, lm, tokenizer, out_dir, ...)`` writes

    vision.onnx        image (1, 1, D, H, W) float32, preprocessed → image_tokens (1, N, hidden): the encoder
                       and the projector in one graph (the LLM's input width)
    decoder.onnx       the causal LM with its KV cache (llmed.export_lm; LoRA merged beforehand)
    embed_tokens.f32   the input embedding table, `<im_patch>` rows included
    tokenizer.json, tokenizer_config.json   the tokenizer with the added special tokens
    manifest.json      kind "report": files with sizes and SHA-256, preprocessing, prompt templates, image token
                       count and placement, end-of-text ids, generation defaults, parity

Prompt templates hold one ``{image}`` mark where the N image tokens go (M3D puts them first, then the
prompt); ``{region}``, ``{question}`` and ``{choices}`` are filled in by the runtime. In the embeddings the
image tokens *replace* the `<im_patch>` run, so the decoder sees exactly training's ``inputs_embeds``.

Parity: on each parity image, the vision graph under onnxruntime must give torch's image tokens (max
difference below ``vision_tolerance``), and greedy decoding of the report prompt from those tokens must give
torch's token ids, with logits within ``tolerance``. Nothing is published otherwise.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from llmed.export_lm import LMExportError, _OrtDecoder, cache_geometry, empty_past, publish_staged, write_decoder

MANIFEST_VERSION = 1


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fill_prompt(template: str, tokenizer: Any, image_tokens: int, **fields: str) -> tuple[list[int], list[int], int]:
    """Token ids before and after the image tokens for ``template`` (one ``{image}`` mark), and the count."""
    if template.count("{image}") != 1:
        raise LMExportError(f"prompt template {template!r} must hold exactly one {{image}} mark")
    before, after = template.split("{image}")
    encode = lambda text: tokenizer(text.format(**fields), add_special_tokens=False).input_ids if text else []  # noqa: E731
    return encode(before), encode(after), image_tokens


def _export_vision(vision: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(vision, (example,), str(path), input_names=["image"], output_names=["image_tokens"], opset_version=opset, dynamo=False, do_constant_folding=True)


def _greedy_from_embeds(lm: nn.Module, embeds: torch.Tensor, steps: int) -> tuple[list[int], list[np.ndarray]]:
    from transformers import DynamicCache

    cache = DynamicCache(config=lm.config)
    embed = lm.get_input_embeddings()
    ids: list[int] = []
    logits: list[np.ndarray] = []
    length = embeds.shape[1]
    mask = torch.ones(1, length, dtype=torch.int64)
    pos = torch.arange(length)[None]
    step = embeds
    for _ in range(steps):
        out = lm(inputs_embeds=step, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
        last = out.logits[0, -1].float()
        logits.append(last.numpy())
        nxt = int(last.argmax())
        ids.append(nxt)
        step = embed(torch.tensor([[nxt]]))
        mask = torch.cat([mask, torch.ones(1, 1, dtype=torch.int64)], 1)
        pos = pos[:, -1:] + 1
    return ids, logits


def report_parity(
    vision: nn.Module, lm: nn.Module, folder: Path, images: Sequence[np.ndarray], prompt: tuple[list[int], list[int], int], steps: int, tolerance: float, vision_tolerance: float
) -> dict[str, Any]:
    """Torch against onnxruntime along the whole path: image → image tokens → greedy report ids."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    vision_session = ort.InferenceSession(str(folder / "vision.onnx"), options, providers=["CPUExecutionProvider"])
    decoder = _OrtDecoder(folder / "decoder.onnx", cache_geometry(lm.config))
    table = np.fromfile(folder / "embed_tokens.f32", dtype="<f4").reshape(lm.get_input_embeddings().weight.shape)
    before, after, count = prompt
    cases = []
    worst_tokens = worst_logits = 0.0
    same = True
    with torch.no_grad():
        for image in images:
            x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
            tokens_torch = vision(x)
            tokens_ort = vision_session.run(None, {"image": x.numpy()})[0]
            worst_tokens = max(worst_tokens, float(np.abs(tokens_ort - tokens_torch.numpy()).max()))
            embed = lm.get_input_embeddings()
            seq = torch.cat([embed(torch.tensor([before])) if before else tokens_torch[:, :0], tokens_torch, embed(torch.tensor([after])) if after else tokens_torch[:, :0]], 1)
            ids_torch, logits_torch = _greedy_from_embeds(lm, seq, steps)
            # onnxruntime: the graph's own image tokens, the exported embedding table
            parts = [table[before][None] if before else np.zeros((1, 0, table.shape[1]), np.float32), tokens_ort, table[after][None] if after else np.zeros((1, 0, table.shape[1]), np.float32)]
            step = np.concatenate(parts, 1).astype(np.float32)
            length = step.shape[1]
            mask = np.ones((1, length), np.int64)
            pos = np.arange(length, dtype=np.int64)[None]
            past = [t.numpy() for t in empty_past(cache_geometry(lm.config), 1)]
            ids_ort: list[int] = []
            for s in range(steps):
                logits, past = decoder(step, mask, pos, past)
                worst_logits = max(worst_logits, float(np.abs(logits[0, -1] - logits_torch[s]).max()))
                nxt = int(logits[0, -1].argmax())
                ids_ort.append(nxt)
                step = table[[nxt]][None]
                mask = np.concatenate([mask, np.ones((1, 1), np.int64)], 1)
                pos = pos[:, -1:] + 1
            same = same and ids_ort == ids_torch
            cases.append({"torchIds": ids_torch, "ortIds": ids_ort})
    return {
        "images": len(images),
        "steps": steps,
        "sameTokens": same,
        "maxImageTokenDifference": worst_tokens,
        "maxLogitDifference": worst_logits,
        "tolerance": tolerance,
        "imageTokenTolerance": vision_tolerance,
        "cases": cases,
    }


def export_report_model(
    vision: nn.Module,
    lm: nn.Module,
    tokenizer: Any,
    out_dir: str | Path,
    *,
    image_shape: Sequence[int],
    preprocess: dict[str, Any],
    prompts: dict[str, str],
    image_token: str,
    stop_ids: Sequence[int],
    generation: dict[str, Any],
    parity_images: Sequence[np.ndarray],
    parity_region: str = "abdomen",
    parity_steps: int = 8,
    tolerance: float = 1e-3,
    vision_tolerance: float = 1e-4,
    opset: int = 17,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export a trained report generator; returns the manifest. ``vision`` maps a preprocessed image
    (1, 1, *image_shape) to (1, N, hidden) image tokens; ``lm`` is the causal LM with LoRA merged."""
    vision = vision.float().eval()
    lm = lm.float().eval()
    example = torch.from_numpy(np.ascontiguousarray(parity_images[0], dtype=np.float32)) if parity_images else torch.zeros(1, 1, *image_shape)
    if tuple(example.shape) != (1, 1, *image_shape):
        raise LMExportError(f"parity images must be (1, 1, {', '.join(map(str, image_shape))}), not {tuple(example.shape)}")
    with torch.no_grad():
        count = int(vision(example).shape[1])
    report_prompt = fill_prompt(prompts["report"], tokenizer, count, region=parity_region)

    def write(folder: Path) -> dict[str, Any]:
        _export_vision(vision, example, folder / "vision.onnx", opset)
        decoder_record = write_decoder(lm, folder, parity_prompts=[report_prompt[0] + report_prompt[1] or [0]], parity_steps=2, tolerance=tolerance, opset=opset)
        tokenizer.save_pretrained(str(folder))
        parity = report_parity(vision, lm, folder, parity_images, report_prompt, parity_steps, tolerance, vision_tolerance)
        if not parity["sameTokens"] or parity["maxLogitDifference"] > tolerance or parity["maxImageTokenDifference"] > vision_tolerance:
            raise LMExportError(
                f"onnxruntime and torch disagree on the report path (same tokens: {parity['sameTokens']}, image tokens differ by "
                f"{parity['maxImageTokenDifference']:.3g} (limit {vision_tolerance:g}), logits by {parity['maxLogitDifference']:.3g} "
                f"(limit {tolerance:g})); nothing was written"
            )
        files = {}
        for name in sorted(p.name for p in folder.iterdir() if p.is_file()):
            files[name] = {"bytes": (folder / name).stat().st_size, "sha256": _sha256(folder / name)}
        manifest = {
            "kind": "report",
            "version": MANIFEST_VERSION,
            "source": source or {},
            "vision": {"file": "vision.onnx", "input": {"name": "image", "shape": [1, 1, *image_shape]}, "output": {"name": "image_tokens", "shape": [1, count, cache_geometry(lm.config)["hidden"]]}},
            **{k: v for k, v in decoder_record.items() if k != "parity"},
            "tokenizer": {"files": ["tokenizer.json", "tokenizer_config.json"]},
            "preprocess": preprocess,
            "prompt": {
                "templates": prompts,
                "imageToken": image_token,
                "imageTokenId": tokenizer.convert_tokens_to_ids(image_token),
                "imageTokens": count,
                "placement": "the {image} mark of each template",
            },
            "stopIds": list(stop_ids),
            "generation": generation,
            "files": files,
            "parity": {"decoder": decoder_record["parity"], "report": parity},
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        return manifest

    return publish_staged(write, out_dir)


class VisionPath(nn.Module):
    """The trained encoder and projector as one graph: preprocessed image → image tokens of the LLM's width."""

    def __init__(self, encoder: nn.Module, projector: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.projector = projector

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(image))


def export_report_run(
    run_dir: str | Path,
    tag: str = "best",
    out_dir: str | Path | None = None,
    *,
    plugins: dict,
    prompts: dict[str, str],
    workspace_root: str | None = None,
    parity_samples: int = 2,
    parity_steps: int = 8,
) -> dict[str, Any]:
    """Export a trained report run (llmed.report): vision path, LoRA-merged decoder, tokenizer, manifest.

    ``prompts`` are the text templates after the image tokens, from the TypeScript side that owns them
    (@llmed/reports: ``{region}`` in the report prompt, ``{question}`` and ``{choices}`` in the VQA one); the
    tokenizer's prefix specials (BOS) and the ``{image}`` mark go in front, as the trainer lays out a sample.
    Parity runs on the first ``parity_samples`` test images of the run's prepared folder."""
    from .report import ReportData, load_report_model
    from .train import read_run_json

    run = Path(run_dir).resolve()
    config = read_run_json(run, "config.json")
    model, record = load_report_model(run, tag, "cpu", workspace_root, plugins)
    lm = model.lm
    merged = lm.model.merge_and_unload() if hasattr(lm.model, "merge_and_unload") else lm.model
    merged.config.use_cache = True
    prefix = lm.tokenizer.decode(lm._prefix()) if lm._prefix() else ""
    templates = {kind: prefix + "{image}" + text for kind, text in prompts.items()}
    prepared = Path(config["data"].get("prepared") or Path(workspace_root or ".") / ".cache" / "prepared" / config["name"])
    if not prepared.is_absolute():
        prepared = Path(workspace_root or ".") / prepared
    data = ReportData(prepared)
    tests = data.split("test") or data.split("val") or data.split("train")
    images = [data.volume(s).unsqueeze(0).float().numpy() for s in tests[:parity_samples]]
    shape = list(images[0].shape[2:])
    region = next((s.region for s in tests if getattr(s, "region", None)), "abdomen")
    return export_report_model(
        VisionPath(model.encoder, model.projector),
        merged,
        lm.tokenizer,
        out_dir or run / "export",
        image_shape=shape,
        preprocess=dict(config["data"]["preprocess"]),
        prompts=templates,
        image_token=lm.tokenizer.convert_ids_to_tokens(lm.image_id),
        stop_ids=[int(lm.eot_id)],
        generation=dict(config.get("generate", {})),
        parity_images=images,
        parity_region=region,
        parity_steps=parity_steps,
        source={"experiment": config["name"], "run": run.name, "tag": tag, "step": record.get("step") if isinstance(record, dict) else None},
    )
