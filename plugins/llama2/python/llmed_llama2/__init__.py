"""llama2 — LLaMA 2 decoder layer(s) of a local Hugging Face checkpoint as a token encoder.

The family is described in the plugin folder's family.json (shared with the TypeScript descriptor); the
shared machinery (strict loading of only the chosen layers, mask, RoPE, freezing, LoRA, final norm) is
``llmed.llm.build_decoder_stack``. ``forward(tokens (N, L, H)) -> tokens (N, L, H)``.
"""

from __future__ import annotations

from pathlib import Path

from llmed.llm import Family, build_decoder_stack

FAMILY = Family.from_json(Path(__file__).resolve().parents[2] / "family.json")


def build(options: dict, inputs: dict, workspace_root: str | None = None):
    return build_decoder_stack(FAMILY, options, inputs, workspace_root=workspace_root)
