"""Tiny causal-LM checkpoints with tokenizers, in the real on-disk format, for the report-generation tests.

``build_tiny_lm(family, out_dir)`` writes config.json + model.safetensors (transformers' save_pretrained,
via fixtures.build_tiny_checkpoint) and a word-level tokenizer (tokenizer.json + tokenizer_config.json,
PreTrainedTokenizerFast.save_pretrained) whose special tokens follow the family:

* ``llama``  (LLaMA 2 style): ``<s>`` BOS added in front, ``</s>`` eos, ``<unk>``; vocab = tokenizer size
* ``llama3`` (LLaMA 3 style): ``<|begin_of_text|>`` BOS, ``<|end_of_text|>`` and ``<|eot_id|>``, rope θ 500000
* ``phi3``: ``<s>`` BOS, ``<|endoftext|>`` eos; model vocab larger than the tokenizer (spare rows)
* ``qwen2``: no BOS, ``<|endoftext|>`` eos and pad; model vocab larger than the tokenizer (spare rows)

and the ``family`` facts the TypeScript causal-LM facet would put into the options.
"""

from __future__ import annotations

import json
from pathlib import Path

WORDS = (
    "the liver spleen kidney left right normal enlarged lesion stone cyst no yes is are of in and with a "
    "findings chest abdomen pelvis describe image this please provide caption mm small large hypodense "
    "hyperdense effusion present absent . , A B C D choices : 1 2 3 4 5"
).split()

SPECIALS = {
    "llama": {"bos": "<s>", "eos": "</s>", "unk": "<unk>", "pad": None, "extra": []},
    "llama3": {"bos": "<|begin_of_text|>", "eos": "<|eot_id|>", "unk": None, "pad": None, "extra": ["<|end_of_text|>"]},
    "phi3": {"bos": "<s>", "eos": "<|endoftext|>", "unk": "<unk>", "pad": None, "extra": []},
    "qwen2": {"bos": None, "eos": "<|endoftext|>", "unk": None, "pad": "<|endoftext|>", "extra": []},
}
MODEL_TYPE = {"llama": "llama", "llama3": "llama", "phi3": "phi3", "qwen2": "qwen2"}
SPARE_ROWS = {"llama": 0, "llama3": 0, "phi3": 8, "qwen2": 8}
END_OF_TEXT = {"llama3": "<|end_of_text|>"}


def build_tokenizer(family: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    sp = SPECIALS[family]
    specials = [t for t in (sp["unk"], sp["bos"], sp["eos"], *sp["extra"]) if t]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(specials + WORDS))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=sp["unk"] or sp["eos"]))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    if sp["bos"]:
        core.post_processor = processors.TemplateProcessing(single=f"{sp['bos']} $A", pair=f"{sp['bos']} $A $B", special_tokens=[(sp["bos"], vocab[sp["bos"]])])
    kwargs = {k + "_token": v for k, v in (("bos", sp["bos"]), ("eos", sp["eos"]), ("unk", sp["unk"]), ("pad", sp["pad"])) if v}
    return PreTrainedTokenizerFast(tokenizer_object=core, **kwargs)


def build_tiny_lm(family: str, out_dir: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> dict:
    from fixtures import build_tiny_checkpoint

    tok = build_tokenizer(family)
    out = Path(out_dir)
    vocab = len(tok) + SPARE_ROWS[family]
    build_tiny_checkpoint("llama" if family == "llama3" else family, out, seed=seed, hidden=hidden, layers=layers, vocab=vocab)
    cfg = json.loads((out / "config.json").read_text())
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in (("bos_token_id", tok.bos_token), ("eos_token_id", tok.eos_token)) if v}
    cfg.update(ids)
    cfg["pad_token_id"] = tok.pad_token_id
    if family == "llama3":
        cfg["rope_theta"] = 500000.0
        if isinstance(cfg.get("rope_parameters"), dict):
            cfg["rope_parameters"]["rope_theta"] = 500000.0
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    tok.save_pretrained(str(out))
    return {"dir": str(out), "family": {"id": family, "title": family, "modelTypes": [MODEL_TYPE[family]]}, "endOfText": END_OF_TEXT.get(family), "hidden": hidden}


def lm_options(info: dict, lora: dict | None = None, init: str = "pretrained") -> dict:
    """Options as the TypeScript causal-LM facet fills them (schema defaults + resolve)."""
    return {
        "checkpoint": info["dir"],
        "hiddenSize": info["hidden"],
        "init": init,
        "lora": {"rank": 16, "alpha": 32, "dropout": 0.05, "targets": "all-linear"} if lora is None else lora,
        "imageToken": "<im_patch>",
        "endOfText": info["endOfText"],
        "family": info["family"],
    }


if __name__ == "__main__":  # python tests/report_fixtures.py <family> <out_dir> [hidden]: for the TypeScript tests
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    family, out = sys.argv[1], sys.argv[2]
    print(json.dumps(build_tiny_lm(family, out, hidden=int(sys.argv[3]) if len(sys.argv) > 3 else 32)))
