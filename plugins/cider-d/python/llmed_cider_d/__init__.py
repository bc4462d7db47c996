"""Reference of the cider-d plugin: pycocoevalcap 1.2's Cider (CIDEr-D) on llmed's tokens joined by
spaces (pycocoevalcap splits on whitespace; its PTB tokeniser is a Java step before it, not used here)."""

from __future__ import annotations

from llmed.text_tokenise import as_reference_lists, tokenise


def reference(options: dict, inputs: dict) -> dict[str, float]:
    from pycocoevalcap.cider.cider import Cider

    def join(s: str) -> str:
        return " ".join(tokenise(s, options["tokenise"]))

    gts = {i: [join(r) for r in rs] for i, rs in enumerate(as_reference_lists(inputs["references"]))}
    res = {i: [join(c)] for i, c in enumerate(inputs["candidates"])}
    score, per = Cider(sigma=float(options["sigma"])).compute_score(gts, res)
    return {"cider-d": float(score), "value": float(score), **{f"sample-{i}": float(v) for i, v in enumerate(per)}}
