"""adapter0's factory derives an absent ``hidden`` from its tokens input (the shape rule no longer writes it)."""

from __future__ import annotations

from llmed_adapter0 import build

TOKENS = {"tokens": {"type": "tokens", "length": 8, "width": 12, "grid": [2, 2, 2]}}
FILLED = {"out": 5, "norm": "none", "activation": "none", "negativeSlope": 0.2}  # what the schema fills


def test_absent_hidden_is_twice_the_input_width_and_a_given_one_is_kept():
    assert build(FILLED, TOKENS)[0].out_features == 24
    assert build({**FILLED, "hidden": 7}, TOKENS)[0].out_features == 7
