"""qwen2 — decoder layer(s) of a local Hugging Face checkpoint as a token encoder.

All behaviour (strict loading of only the chosen layers, mask, RoPE, freezing, LoRA, final norm) lives in
`llmed.llm.build_decoder_stack`; this package only names the family. `forward(tokens) -> tokens`.
"""
from __future__ import annotations

from llmed.llm import build_decoder_stack

FAMILY = "qwen2"


def build(options: dict, inputs: dict, workspace_root: str | None = None):
    return build_decoder_stack(FAMILY, options, inputs, workspace_root=workspace_root)
