"""Reference of the rouge-l plugin: Google's rouge-score (0.1.2) rougeL, stemming off, best of the
references by F (score_multi), plain mean over samples."""

from __future__ import annotations

from llmed.text_tokenise import as_reference_lists, tokenise


class _Tokens:
    """rouge-score tokenizer interface over llmed's tokenisers (its own when 'rouge')."""

    def __init__(self, how: str):
        self.how = how

    def tokenize(self, text: str) -> list[str]:
        return tokenise(text, self.how)


def reference(options: dict, inputs: dict) -> dict[str, float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False, tokenizer=None if options["tokenise"] == "rouge" else _Tokens(options["tokenise"]))
    f, p, r = [], [], []
    for cand, refs in zip(inputs["candidates"], as_reference_lists(inputs["references"])):
        s = scorer.score_multi(refs, cand)["rougeL"]
        f.append(s.fmeasure)
        p.append(s.precision)
        r.append(s.recall)
    n = len(f)
    return {**{f"sample-{i}": v for i, v in enumerate(f)}, "rouge-l": sum(f) / n, "rouge-l-precision": sum(p) / n, "rouge-l-recall": sum(r) / n, "value": sum(f) / n}
