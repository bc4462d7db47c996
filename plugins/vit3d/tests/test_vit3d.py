"""vit3d: cases.json; MONAI's patch and token order; the strict, weights-only load of MONAI-1.3-named
(M3D-CLIP) weights, with missing and unexpected keys named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parents[1]
from llmed_vit3d import _MONAI_RULES, build, map_monai_keys, patchify  # noqa: E402

from llmed.plugin_cases import case_value, read_cases  # noqa: E402
from llmed.weights import WeightsError  # noqa: E402
from plugin_registry import fill_options  # noqa: E402

CASES = read_cases(HERE)
TINY = {"patch": [4, 4, 2], "width": 16, "depth": 2, "heads": 2, "mlpWidth": 32}
IMAGE = {"type": "volume", "channels": 1, "spatial": [8, 8, 4]}


@pytest.fixture(scope="module")
def tiny_options():
    return [fill_options("vit3d", o) for o in (TINY, {**TINY, "trainable": False}, {})]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c["name"] for c in CASES])
def test_cases(index):
    case = CASES[index]
    options = fill_options("vit3d", case["options"])
    model = build(options, case["shapes"])
    out = model(torch.from_numpy(case_value(case["inputs"]["image"])))
    assert list(out.shape) == case["expected"]["tokens"]["shape"]


def test_paper_defaults(tiny_options):
    paper = tiny_options[2]
    assert (paper["patch"], paper["width"], paper["depth"], paper["heads"], paper["mlpWidth"], paper["qkvBias"], paper["cls"]) == ([16, 16, 4], 768, 12, 12, 3072, False, True)


def test_patch_vectors_and_token_order_follow_monai():
    x = torch.arange(1 * 2 * 4 * 8 * 8, dtype=torch.float32).reshape(1, 2, 4, 8, 8)  # (N, C, K, J, I), 2 channels
    pk, pj, pi = 2, 4, 4
    out = patchify(x, (pk, pj, pi))
    gk, gj, gi = 2, 2, 2
    for t in range(gk * gj * gi):
        k, rem = divmod(t, gj * gi)  # tokens (h w d) = (k', j', i'), i' fastest
        j, i = divmod(rem, gi)
        block = x[0, :, k * pk : (k + 1) * pk, j * pj : (j + 1) * pj, i * pi : (i + 1) * pi]  # (C, pk, pj, pi)
        assert torch.equal(out[0, t], block.permute(1, 2, 3, 0).reshape(-1))  # (p1 p2 p3 c)


def monai_names(state: dict) -> dict:
    """This module's state dict under MONAI 1.3's names (the inverse of the plugin's rules)."""
    inverse = {
        r"^embed\.(weight|bias)$": r"patch_embedding.patch_embeddings.1.\1",
        r"^position$": "patch_embedding.position_embeddings",
        r"^cls$": "cls_token",
        r"^blocks\.(\d+)\.attn\.proj\.(.+)$": r"blocks.\1.attn.out_proj.\2",
        r"^blocks\.(\d+)\.fc1\.(.+)$": r"blocks.\1.mlp.linear1.\2",
        r"^blocks\.(\d+)\.fc2\.(.+)$": r"blocks.\1.mlp.linear2.\2",
    }
    out = {}
    for k, v in state.items():
        for pattern, repl in inverse.items():
            if re.match(pattern, k):
                k = re.sub(pattern, repl, k)
                break
        out[k] = v
    return out


def test_monai_named_weights_load_strictly(tmp_path, tiny_options):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = build(tiny_options[0], {"image": IMAGE})
    monai = monai_names(source.state_dict())
    assert "patch_embedding.patch_embeddings.1.weight" in monai and "blocks.1.mlp.linear2.bias" in monai
    assert set(map_monai_keys(monai)[0]) == set(source.state_dict())
    monai["classification_head.0.weight"] = torch.zeros(2, 16)  # CLIP-pretraining head: known, not used
    file = tmp_path / "vision.safetensors"
    save_file({"vision_encoder." + k: v for k, v in monai.items()}, str(file))
    loaded = build({**tiny_options[1], "weights": str(file)}, {"image": IMAGE})
    x = torch.rand(1, 1, 4, 8, 8)
    with torch.no_grad():
        assert torch.allclose(loaded(x), source.eval()(x), atol=1e-6)
    assert not any(p.requires_grad for p in loaded.parameters())  # trainable: false
    assert len(_MONAI_RULES) == 10


def test_missing_and_unexpected_keys_are_named(tmp_path, tiny_options):
    from safetensors.torch import save_file

    monai = monai_names(build(tiny_options[0], {"image": IMAGE}).state_dict())
    del monai["blocks.1.attn.qkv.weight"]
    monai["blocks.0.attn.qkv.bias"] = torch.zeros(48)  # a qkv bias M3D's ViT does not have
    file = tmp_path / "bad.safetensors"
    save_file(monai, str(file))
    with pytest.raises(WeightsError) as info:
        build({**tiny_options[0], "weights": str(file)}, {"image": IMAGE})
    msg = str(info.value)
    assert "missing keys: blocks.1.attn.qkv.weight" in msg and "unexpected keys: blocks.0.attn.qkv.bias" in msg
    assert info.value.where == str(file)


class Payload:
    """Stands for any object a crafted weights file could ask pickle to build."""


def test_a_pickled_object_is_refused(tmp_path, tiny_options):
    file = tmp_path / "pretrained_ViT.bin"
    torch.save({"x": Payload()}, str(file))  # an arbitrary pickled object: a weights-only load refuses it
    with pytest.raises(WeightsError, match="weights-only"):
        build({**tiny_options[0], "weights": str(file)}, {"image": IMAGE})


def test_paper_sizes_have_the_parameter_count_of_m3ds_vit(tiny_options):
    # spec §3.3: ViT3D ≈ 87.4 M parameters (patch embedding, position embedding, CLS, 12 blocks, final norm)
    model = build(tiny_options[2], {"image": {"type": "volume", "channels": 1, "spatial": [256, 256, 32]}})
    count = sum(p.numel() for p in model.parameters())
    assert count == pytest.approx(87.4e6, rel=0.002)
    assert model.position.shape == (1, 2048, 768) and model.blocks[0].attn.qkv.bias is None
