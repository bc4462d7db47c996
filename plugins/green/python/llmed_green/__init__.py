"""GREEN on the Python side: the judge runner (``judge.py``, a local model folder only) and the reference
of the parser and formula — green_score's reading rules written again here (green_score itself needs
datasets, sentence-transformers and scikit-learn, and a download of its judge), with llmed's stricter
treatment of unreadable answers beside the released one."""

from __future__ import annotations

import re

SIGNIFICANT, INSIGNIFICANT, MATCHED = "Clinically Significant Errors", "Clinically Insignificant Errors", "Matched Findings"


def _section(text: str, name: str) -> str | None:
    m = re.search(rf"\[{re.escape(name)}\]:\s*(.*?)(?:\n\s*\n|\Z)", text, re.DOTALL)
    return None if m is None else m.group(1)


def _errors(body: str) -> list[int] | None:
    items, labels = re.findall(r"\(([a-f])\) (.*)", body), "abcdef"
    if not items:
        items, labels = re.findall(r"\(([1-6])\) (.*)", body), "123456"
    counts, found = [0] * 6, False
    for label, rest in items:
        n = re.search(r"(?<=: )\b(\d+)\b(?=\.)", f"({label}) {rest}")
        if n:
            counts[labels.index(label)] = int(n.group(1))
            found = True
    return counts if found else None


def parse(text: str) -> dict | None:
    """Counts of a judge answer, or None when it is unreadable (a section or its count missing)."""
    sig, matched = _section(text, SIGNIFICANT), _section(text, MATCHED)
    if sig is None or matched is None:
        return None
    significant = [0] * 6
    if not sig.startswith("No"):
        significant = _errors(sig)
        if significant is None:
            return None
    m = 0
    if not matched.startswith("No"):
        c = re.match(r"(\d+)\.", matched)
        if c is None:
            return None
        m = int(c.group(1))
    return {"significant": significant, "matched": m}


def score(counts: dict) -> float:
    if counts["matched"] == 0:
        return 0.0
    return counts["matched"] / (counts["matched"] + sum(counts["significant"]))


def as_released(text: str) -> float:
    """green_score's compute_green: missing sections and counts read as 0, so unreadable answers score 0."""
    sig, matched = _section(text, SIGNIFICANT), _section(text, MATCHED)
    significant = [0] * 6 if sig is None or sig.startswith("No") else (_errors(sig) or [0] * 6)
    m = 0
    if matched is not None and not matched.startswith("No"):
        c = re.match(r"\b(\d+)\b(?=\.)", matched)
        m = int(c.group(1)) if c else 0
    return score({"significant": significant, "matched": m})


def reference(options: dict, inputs: dict) -> dict[str, float]:
    answers = inputs["answers"]
    parsed = [parse(a) for a in answers]
    ok = [p for p in parsed if p is not None]
    nan = float("nan")
    return {
        "green": sum(score(p) for p in ok) / len(ok) if ok else nan,
        "value": sum(score(p) for p in ok) / len(ok) if ok else nan,
        "green-as-released": sum(as_released(a) for a in answers) / len(answers),
        "unparseable": float(len(parsed) - len(ok)),
        "mean-matched": sum(p["matched"] for p in ok) / len(ok) if ok else nan,
        "mean-significant-errors": sum(sum(p["significant"]) for p in ok) / len(ok) if ok else nan,
    }
