"""Tiny checkpoints of an LLM family, in the real on-disk format, for the tests of family plugins.

``write_tiny_checkpoint(family, folder)`` builds the family's causal LM (``family.json``'s
``transformers.causalLM``, else its ``model``) from its own config class at tiny sizes and writes it with
``save_pretrained``: ``config.json`` plus ``model.safetensors`` (or shards with an index), exactly the files a
downloaded checkpoint has. Any family plugin, first- or third-party, can test itself with it; nothing here
knows a family.

``fill='sine'`` sets every tensor from a formula instead of the random init, so a test may keep expected
output values: tensor number ``t`` (in sorted key order) holds ``offset + scale * sin(1.7 * i + t)`` over its
flat index ``i``, computed in float64 (scale 0.1 for weights, about a 64-wide layer's init spread, and
0.05 for biases; norm weights ``1 + 0.25 * sin(..)``). Those values depend only on the tensor names and shapes, not on transformers' init
order or the torch RNG. ``fill='random'`` keeps transformers' init (seeded) with norm weights drawn in
[0.5, 1.5], so a loader that leaves them at one is caught.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .llm import Family

__all__ = ["TINY_SIZES", "tiny_config", "write_tiny_checkpoint", "sine_values"]

# Small enough to build in well under a second; grouped-query attention on (kv_heads < heads), as the
# large checkpoints have it.
TINY_SIZES = dict(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=96)


def sine_values(shape, seed: float, scale: float = 1.0, offset: float = 0.0) -> torch.Tensor:
    """``offset + scale * sin(1.7 * i + seed)`` over the flat index, in float64, returned as float32 — the
    same rule as the ``sine`` VALUE of plugins' tests/cases.json."""
    n = math.prod(shape)
    i = torch.arange(n, dtype=torch.float64)
    return (offset + scale * torch.sin(1.7 * i + seed)).to(torch.float32).reshape(tuple(shape))


def tiny_config(family: Family, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2, intermediate: int | None = None, vocab: int = 96, **extra):
    """The family's transformers config at tiny sizes (dropouts off; ``extra`` passes other fields)."""
    config_cls = family.cls("config")
    fields = dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=intermediate or 2 * hidden,
        vocab_size=vocab,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    return config_cls(**{**fields, **extra})


def _is_norm(name: str) -> bool:
    return name.endswith("norm.weight")


def write_tiny_checkpoint(
    family: Family, out_dir: str | Path, *, fill: str = "sine", seed: int = 0, sharded: bool = False, shard_size: int | str = "60KB", config_fields: dict | None = None, **sizes
) -> dict:
    """Write a tiny checkpoint of ``family`` to ``out_dir``; returns ``{"dir", "files", "hidden_size", "num_layers"}``.

    ``sizes`` are tiny_config's (hidden, layers, heads, kv_heads, intermediate, vocab); ``sharded`` saves
    with a small ``max_shard_size`` so decoder layers land in shards of their own.
    """
    if fill not in ("sine", "random"):
        raise ValueError(f"fill must be 'sine' or 'random', got {fill!r}")
    torch.manual_seed(seed)
    config = tiny_config(family, **sizes, **(config_fields or {}))
    role = "causalLM" if family.class_name("causalLM") else "model"
    model = family.cls(role)(config)
    with torch.no_grad():
        for t, (name, tensor) in enumerate(sorted(model.state_dict().items())):
            if not tensor.is_floating_point():
                continue
            if fill == "sine":
                if _is_norm(name):
                    value = sine_values(tensor.shape, seed + t, 0.25, 1.0)
                else:
                    value = sine_values(tensor.shape, seed + t, 0.05 if name.endswith(".bias") else 0.1)
                tensor.copy_(value)
            elif _is_norm(name):
                tensor.uniform_(0.5, 1.5)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if sharded:
        model.save_pretrained(out, max_shard_size=shard_size)
    else:
        model.save_pretrained(out)
    return {"dir": str(out), "files": sorted(p.name for p in out.iterdir()), "hidden_size": int(config.hidden_size), "num_layers": int(config.num_hidden_layers)}
