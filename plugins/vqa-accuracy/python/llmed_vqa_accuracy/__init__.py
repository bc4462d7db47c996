"""Reference of the vqa-accuracy plugin: the two rules written again in Python (no library defines VQA
letter accuracy): Med3DLLM's exact letter match and M3D-LaMed's "<letter>." substring rule."""

from __future__ import annotations

import re

_LETTER = re.compile(r"\s*\(?([A-Za-z])(?:[.):]|\s|$)")


def answer_letter(text: str, k: int) -> str | None:
    m = _LETTER.match(text)
    if not m:
        return None
    letter = m.group(1).upper()
    return letter if ord(letter) - ord("A") < k else None


def reference(options: dict, inputs: dict) -> dict[str, float]:
    choices = inputs.get("choices")
    hits, chance, unparsed = 0, 0.0, 0
    n = len(inputs["candidates"])
    for i, cand in enumerate(inputs["candidates"]):
        ref = inputs["references"][i]
        ref = ref if isinstance(ref, str) else ref[0]
        k = len(choices[i]) if choices else options["optionCount"]
        chance += 1 / k
        truth = answer_letter(ref, k)
        if options["match"] == "m3d":
            hits += f"{truth}." in cand
            continue
        got = answer_letter(cand, k)
        unparsed += got is None
        hits += got == truth
    return {"accuracy": hits / n, "value": hits / n, "chance": chance / n, "unparsed": float(unparsed)}
