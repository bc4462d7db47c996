"""The tokenisers of @llmed/text (packages/text/src/tokenise.ts) for the Python references of the text
metrics. 'rouge' and '13a' call the reference libraries' own tokenisers, so the TypeScript versions are
checked against them; 'words' is llmed's own rule, written here with the same Unicode classes."""

from __future__ import annotations

import regex

_WORD = regex.compile(r"[\p{L}\p{N}]+(?:['.][\p{L}\p{N}]+)*|[^\s\p{L}\p{N}]")


def tokenise(text: str, how: str = "words", lowercase: bool = False) -> list[str]:
    if how == "words":
        return _WORD.findall(text.lower())
    if how == "rouge":
        from rouge_score import tokenize

        return tokenize.tokenize(text, None)
    if how == "13a":
        from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

        out = Tokenizer13a()(text).split()
        return [t.lower() for t in out] if lowercase else out
    if how == "whitespace":
        return text.split()
    raise ValueError(f"unknown tokeniser {how!r}")


def as_reference_lists(references: list) -> list[list[str]]:
    """A case's references: each a string or a list of strings."""
    return [[r] if isinstance(r, str) else list(r) for r in references]
