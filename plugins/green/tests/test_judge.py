"""The GREEN judge runner on a tiny local model: greedy answers come back one per prompt, nothing is
downloaded, and noise answers are unparseable (None), not a score of 0."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PLUGIN / "python"), str(Path(__file__).resolve().parent)]

pytest.importorskip("transformers")


def test_runner_answers_each_prompt_and_noise_is_unparseable(tmp_path):
    import llmed_green
    from llmed_green.judge import judge
    from tiny_judge import build

    from plugin_registry import fill_options

    device = fill_options("green", {})["device"]  # the schema's default, as the TypeScript runtime passes it
    folder = build(tmp_path / "judge")
    prompts = ["the liver ( a ) : 1 .", "no errors matched findings : 2 .", "the"]
    answers = judge(str(folder), prompts, max_new_tokens=4, batch_size=2, device=device)
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    assert answers == judge(str(folder), prompts, max_new_tokens=4, batch_size=3, device=device)  # greedy and padding-independent
    assert [llmed_green.parse(a) for a in answers] == [None, None, None]
