"""Reference of the bleu plugin: nltk's corpus_bleu (3.10.4) on llmed's tokens; sacrebleu (2.6.0) as a
second reference where the two define the same number (13a tokens, no smoothing)."""

from __future__ import annotations

from llmed.text_tokenise import as_reference_lists, tokenise


def reference(options: dict, inputs: dict) -> dict[str, float]:
    import warnings

    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu

    def tok(s: str) -> list[str]:
        return tokenise(s, options["tokenise"], options["lowercase"])

    refs = [[tok(r) for r in rs] for rs in as_reference_lists(inputs["references"])]
    hyps = [tok(c) for c in inputs["candidates"]]
    smooth = SmoothingFunction()
    fn = smooth.method1 if options["smoothing"] == "floor" else smooth.method0
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        # nltk warns when an n-gram order has no match; the value (~0) is what we compare.
        warnings.simplefilter("ignore")
        for n in range(1, 5):
            out[f"bleu-{n}"] = float(corpus_bleu(refs, hyps, weights=tuple([1.0 / n] * n), smoothing_function=fn))
        n = options["order"]
        for i, (r, h) in enumerate(zip(refs, hyps)):
            out[f"sample-{i}"] = float(sentence_bleu(r, h, weights=tuple([1.0 / n] * n), smoothing_function=fn))
    out["value"] = out[f"bleu-{options['order']}"]
    return out


def sacrebleu_reference(options: dict, inputs: dict) -> dict[str, float]:
    """sacrebleu's corpus BLEU-4 (÷100), tokenised by sacrebleu itself; references padded per stream."""
    import sacrebleu

    refs = as_reference_lists(inputs["references"])
    streams = [[rs[k] if k < len(rs) else None for rs in refs] for k in range(max(len(rs) for rs in refs))]
    tokenize = "13a" if options["tokenise"] == "13a" else "none"
    if tokenize == "none":
        cands = [" ".join(tokenise(c, options["tokenise"], options["lowercase"])) for c in inputs["candidates"]]
        streams = [[None if r is None else " ".join(tokenise(r, options["tokenise"], options["lowercase"])) for r in s] for s in streams]
    else:
        cands = list(inputs["candidates"])
    b = sacrebleu.corpus_bleu(cands, streams, tokenize=tokenize, lowercase=options["lowercase"], smooth_method="none", force=True)
    return {"bleu-4": b.score / 100.0}
