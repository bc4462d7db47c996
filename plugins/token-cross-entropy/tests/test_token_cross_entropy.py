"""token-cross-entropy: the cases of cases.json, and that prompt / padding positions never count."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parents[1]
from llmed_token_cross_entropy import build  # noqa: E402

from llmed.plugin_cases import case_value, read_cases  # noqa: E402
from plugin_registry import fill_options  # noqa: E402

CASES = read_cases(HERE)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c["name"] for c in CASES])
def test_cases(index):
    case = CASES[index]
    options = fill_options("token-cross-entropy", case["options"])
    logits = torch.from_numpy(case_value(case["inputs"]["logits"]))
    labels = torch.from_numpy(case_value(case["inputs"]["labels"])).long()
    loss = build(options)({"logits": logits}, {"labels": labels})
    assert float(loss) == pytest.approx(case["expected"]["loss"], abs=case.get("tolerance", 1e-6))


def test_masked_positions_do_not_change_the_loss():
    options = fill_options("token-cross-entropy", {})
    loss = build(options)
    logits = torch.randn(2, 6, 10)
    labels = torch.tensor([[-100, -100, 3, 4, 5, -100], [-100, 1, 2, -100, -100, -100]])
    a = loss({"logits": logits}, {"labels": labels})
    changed = logits.clone()
    changed[0, 4:] = 100.0  # positions 4 and 5 predict labels 5 (kept) and nothing
    changed[0, 4] = logits[0, 4]
    changed[1, 2:] = -7.0  # row 1 predicts labels only up to position 1→2
    changed[1, 1] = logits[1, 1]
    changed[1, 0] = logits[1, 0]
    b = loss({"logits": changed}, {"labels": labels})
    assert torch.allclose(a, b)


def test_a_batch_without_answer_tokens_gives_zero_with_a_graph():
    options = fill_options("token-cross-entropy", {})
    logits = torch.randn(1, 3, 5, requires_grad=True)
    out = build(options)({"logits": logits}, {"labels": torch.full((1, 3), -100)})
    out.backward()
    assert float(out) == 0.0


def test_target_position_logits_give_the_loss_of_all_positions():
    options = fill_options("token-cross-entropy", {"labelSmoothing": 0.1})
    loss = build(options)
    logits = torch.randn(2, 6, 10)
    labels = torch.tensor([[-100, -100, 3, 4, 5, -100], [-100, 1, 2, -100, -100, -100]])
    keep = torch.zeros(2, 6, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != -100
    full = loss({"logits": logits}, {"labels": labels})
    part = loss({"logits": logits[keep], "targets": labels[:, 1:][keep[:, :-1]]}, {"labels": labels})
    assert torch.allclose(full, part)
    empty = torch.zeros(0, 10, requires_grad=True)
    zero = loss({"logits": empty, "targets": torch.zeros(0, dtype=torch.long)}, {})
    zero.backward()
    assert float(zero) == 0.0
