"""Runs a GREEN judge model from a local folder on prompts: ``python -m llmed_green.judge`` reads
``{"model", "prompts", "maxNewTokens", "batchSize", "device"}`` as JSON on stdin and prints
``{"answers": [...]}``. Greedy decoding (GREEN's setting), left padding for batches, local files only:
nothing is downloaded."""

from __future__ import annotations

import json
import sys


def _chat(tokenizer, prompt: str) -> str:
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return prompt
    # GREEN's RadLlama2 template reads {"from", "value"} turns; standard templates read {"role", "content"}.
    turn = {"from": "human", "value": prompt} if "'from'" in template or '"from"' in template or ".from" in template else {"role": "user", "content": prompt}
    return tokenizer.apply_chat_template([turn], tokenize=False, add_generation_prompt=True)


def judge(model_dir: str, prompts: list[str], max_new_tokens: int, batch_size: int, device: str) -> list[str]:
    """Greedy answers of the judge in ``model_dir``, one per prompt. The sizes and device come from the green
    options (their defaults are the descriptor schema's; none are kept here)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True, padding_side="left")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=dtype).to(device).eval()
    out: list[str] = []
    with torch.inference_mode():
        for i in range(0, len(prompts), batch_size):
            batch = tok([_chat(tok, p) for p in prompts[i : i + batch_size]], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            gen = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            for row in gen[:, batch["input_ids"].shape[1] :]:
                out.append(tok.decode(row, skip_special_tokens=True).replace("</s>", "").replace("<unk>", ""))
    return out


def main() -> None:
    req = json.load(sys.stdin)
    answers = judge(req["model"], req["prompts"], int(req["maxNewTokens"]), int(req["batchSize"]), req["device"])
    print(json.dumps({"answers": answers}))


if __name__ == "__main__":
    main()
