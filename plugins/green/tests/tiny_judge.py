"""A tiny random Llama "judge" with a word-level tokenizer, to run the GREEN judge runner end to end in
tests (its answers are noise: they must come back as unparseable). ``python tiny_judge.py <out>``."""

from __future__ import annotations

import sys
from pathlib import Path


def build(out: str | Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out)
    words = ["<pad>", "<s>", "</s>", "<unk>", "[", "]", ":", ".", "(", ")", "no", "errors", "matched", "findings", "1", "2", "a", "b", "the", "liver"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(words),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    LlamaForCausalLM(cfg).save_pretrained(out)
    fast.save_pretrained(out)
    # a stand-in instruction in our words (GREEN's own text is the user's to put here beside a real judge)
    (out / "green_prompt.txt").write_text("Compare the candidate report with the reference report.\nReference: {reference}\nCandidate: {candidate}\n")
    return out


if __name__ == "__main__":
    print(build(sys.argv[1]))
