"""spatial-pooling: cases.json, and the grid order (spec §3.11 item 1): tokens flattened from a (C, K, J, I)
feature map, i fastest — as vit3d emits them — pool to exactly the 2×2×2 neighbourhood means of that map."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parents[1]
from llmed_spatial_pooling import build  # noqa: E402

from llmed.plugin_cases import case_value, read_cases  # noqa: E402
from plugin_registry import fill_options  # noqa: E402

CASES = read_cases(HERE)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c["name"] for c in CASES])
def test_cases(index):
    case = CASES[index]
    options = fill_options("spatial-pooling", case["options"])
    module = build(options, case["shapes"])
    out = module(torch.from_numpy(case_value(case["inputs"]["tokens"])))
    assert list(out.shape) == case["expected"]["tokens"]["shape"]


def test_pooling_follows_the_encoder_grid_order():
    # a non-cubic grid (i, j, k) = (8, 4, 2): a reshape in the wrong axis order mixes non-neighbours
    options = fill_options("spatial-pooling", {"pool": 2, "outWidth": 3, "layers": 1})
    gi, gj, gk, c = 8, 4, 2, 5
    fmap = torch.randn(1, c, gk, gj, gi)
    tokens = fmap.flatten(2).transpose(1, 2)  # (1, K·J·I, C), i fastest
    module = build(options, {"tokens": {"type": "tokens", "length": gi * gj * gk, "width": c, "grid": [gi, gj, gk]}})
    with torch.no_grad():
        module.mlp[0].weight.copy_(torch.eye(3, c))
        module.mlp[0].bias.zero_()
        got = module(tokens)
    want = F.avg_pool3d(fmap, 2).flatten(2).transpose(1, 2)[..., :3]
    assert torch.allclose(got, want, atol=1e-6)
    # the Med3DLLM mix-up (grid read in the other axis order) gives different tokens
    wrong = F.avg_pool3d(tokens.transpose(1, 2).reshape(1, c, gi, gj, gk), 2).flatten(2).transpose(1, 2)[..., :3]
    assert not torch.allclose(got, wrong, atol=1e-3)


def test_a_token_count_off_the_grid_is_an_error():
    options = fill_options("spatial-pooling", {})
    module = build(options, {"tokens": {"type": "tokens", "length": 16, "width": 4, "grid": [4, 2, 2]}})
    with pytest.raises(ValueError, match="do not fill the grid 4×2×2"):
        module(torch.randn(1, 17, 4))


def test_m3d_sizes_give_256_tokens_of_4096():
    options = fill_options("spatial-pooling", {})
    assert options["outWidth"] == 4096 and options["pool"] == 2 and options["layers"] == 2
    module = build(options, {"tokens": {"type": "tokens", "length": 2048, "width": 768, "grid": [16, 16, 8]}})
    assert sum(p.numel() for p in module.parameters()) == 768 * 4096 + 4096 + 4096 * 4096 + 4096  # ≈ 19.9 M (spec §3.3)
    with torch.no_grad():
        assert module(torch.randn(1, 2048, 768)).shape == (1, 256, 4096)
