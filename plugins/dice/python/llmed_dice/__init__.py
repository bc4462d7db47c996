"""numpy reference of the ``dice`` metric (the TypeScript one is plugins/dice/src/dice.ts)."""

from __future__ import annotations

import numpy as np

from llmed.metrics_ref import chosen_labels, label_map, label_result


def dice(fixed: np.ndarray, warped: np.ndarray, labels, absent_as: str = "nan") -> dict:
    """2|A∩B| / (|A|+|B|) per label; 0/0 → NaN (or 0 with absent_as='zero')."""
    out = {}
    for label in labels:
        a = fixed == label
        b = warped == label
        denom = int(a.sum()) + int(b.sum())
        if denom == 0:
            out[str(label)] = float("nan") if absent_as == "nan" else 0.0
        else:
            out[str(label)] = 2.0 * int(np.logical_and(a, b).sum()) / denom
    return out


def reference(options: dict, inputs: dict) -> dict[str, float]:
    fixed, warped = label_map(inputs["fixedLabels"]), label_map(inputs["warpedLabels"])
    return label_result(dice(fixed, warped, chosen_labels(options, inputs, fixed, warped), options["absentAs"]))
