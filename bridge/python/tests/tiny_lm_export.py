"""Build a tiny causal LM with a real tokenizer, export its decoder, and record torch's answers.

``python -m tests.tiny_lm_export <out>`` writes

    <out>/checkpoint/   a Hugging Face checkpoint folder: config.json, model.safetensors, tokenizer.json,
                        tokenizer_config.json (a byte-level BPE trained here on a small corpus, with the
                        chat format's special tokens)
    <out>/export/       decoder.onnx, embed_tokens.f32, decoder.json (llmed.export_lm) + the tokenizer files
    <out>/reference.json  Python's token ids for a corpus (special tokens included) and torch's greedy
                        continuations (single prompts and a left-padded batch)

and prints ``{"checkpoint": ..., "export": ...}`` as its last line. The Node tests
(packages/runtime/tests/text-generation.test.ts) compare the TypeScript tokenizer and generation with it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

CORPUS = [
    "The liver is enlarged. No focal lesion is seen.",
    "A 12 mm hypodense lesion in the left kidney.",
    "There is a small right pleural effusion.",
    "No stones in the gallbladder; the spleen is normal in size.",
    "Contrast phase: portal venous. The pancreas is unremarkable.",
    "Question: Which organ holds the lesion? A. liver B. spleen C. kidney D. pancreas Answer: C",
]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<im_patch>"]
CHECK_TEXTS = CORPUS + [
    "<|im_start|>user\nDescribe the abdomen.<|im_end|>\n<|im_start|>assistant\n",
    "Ünïcode — and émojis 🙂 survive byte-level BPE.",
    "  leading spaces,\ttabs and\nnew lines  ",
    "<im_patch><im_patch><im_patch> findings:",
]


def build_tokenizer(folder: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", bos_token="<|im_start|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>", additional_special_tokens=["<im_patch>"]
    )
    fast.save_pretrained(str(folder))
    return fast


def memorise(model, tokenizer, steps: int = 150) -> None:
    """A few hundred Adam steps on the corpus, so greedy continuations are sentences, not one token
    repeated: a broken cache or position then shows as different text, not as the same repeat."""
    eos = tokenizer.eos_token_id
    rows = [tokenizer(t, add_special_tokens=False).input_ids + [eos] for t in CORPUS]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [eos] * (width - len(r)) for r in rows])
    labels = torch.tensor([r + [-100] * (width - len(r)) for r in rows])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def tiny_llama_lm(tokenizer, *, hidden: int, intermediate: int, max_positions: int):
    """A seeded two-layer LLaMA causal LM (4 heads, 2 KV heads, tied embeddings) sized for ``tokenizer``'s
    vocabulary and special ids: the model the export tests memorise and export."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=max_positions,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def main(out: str) -> None:
    from llmed.export_lm import export_decoder, greedy_parity

    out_dir = Path(out)
    checkpoint = out_dir / "checkpoint"
    checkpoint.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(checkpoint)
    model = tiny_llama_lm(tokenizer, hidden=32, intermediate=64, max_positions=256)
    memorise(model, tokenizer)
    model.eval().save_pretrained(str(checkpoint))

    ids = {text: tokenizer(text, add_special_tokens=False).input_ids for text in CHECK_TEXTS}
    prompts = [ids[CORPUS[0]][:4], ids[CORPUS[2]][:5], ids[CORPUS[3]][:7], ids[CHECK_TEXTS[len(CORPUS)]]]
    steps = 12
    export = out_dir / "export"
    record = export_decoder(model, export, parity_prompts=prompts[:2], parity_steps=6)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy2(checkpoint / name, export / name)
    single = [greedy_parity(model, export / "decoder.onnx", [p], steps)["torchIds"][0] for p in prompts]
    batched = greedy_parity(model, export / "decoder.onnx", prompts, steps)
    reference = {
        "tokenIds": ids,
        "decoded": {text: tokenizer.decode(ids[text]) for text in CHECK_TEXTS},
        "specialIds": {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIALS},
        "eosId": tokenizer.eos_token_id,
        "prompts": prompts,
        "steps": steps,
        "greedySingle": single,
        "greedyBatched": batched["torchIds"],
        "exportParity": record["parity"],
    }
    (out_dir / "reference.json").write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({"checkpoint": str(checkpoint), "export": str(export)}))


if __name__ == "__main__":
    main(sys.argv[1])
