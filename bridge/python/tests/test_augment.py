"""llmed.augment: the training-pair augmentation of ``train.augment`` (swap, warpFixed, flip, warpBoth)."""

from __future__ import annotations

import torch

from llmed.augment import PairAugmentation, control_point_field
from llmed.metrics_ref import jacobian_determinant
from llmed.nn import warp


def _batch(n: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    shape = (n, 1, 12, 16, 10)
    label_map = torch.randint(0, 3, shape, generator=g, dtype=torch.int32)
    return {
        "moving": torch.rand(shape, generator=g),
        "fixed": torch.rand(shape, generator=g) + 2.0,  # distinguishable from moving
        "moving_label_map": label_map,
        "fixed_label_map": label_map + 10,
    }


def test_no_augmentation_returns_the_batch_itself():
    b = _batch()
    assert PairAugmentation({"swap": 0.0, "warpFixed": {"probability": 0.0, "maxDisplacement": 2.0, "spacing": 8.0}}, 0)(b, [0, 1]) is b
    assert PairAugmentation(None, 0)(b, [0, 1]) is b


def test_swap_exchanges_moving_and_fixed_with_their_labels():
    b = _batch()
    out = PairAugmentation({"swap": 1.0}, 0)(b, [5, 6])
    assert torch.equal(out["moving"], b["fixed"]) and torch.equal(out["fixed"], b["moving"])
    assert torch.equal(out["moving_label_map"], b["fixed_label_map"]) and torch.equal(out["fixed_label_map"], b["moving_label_map"])


def test_draws_are_a_pure_function_of_seed_and_draw_index():
    b = _batch()
    opts = {"swap": 0.5, "warpFixed": {"probability": 0.5, "maxDisplacement": 1.5, "spacing": 4.0}}
    a1 = PairAugmentation(opts, 3)(b, [10, 11])
    a2 = PairAugmentation(opts, 3)(b, [10, 11])
    for k in b:
        assert torch.equal(a1[k], a2[k])
    # sample 11 alone gets what it got as the second sample of the batch (resume and batch size do not change it)
    alone = PairAugmentation(opts, 3)({k: v[1:] for k, v in b.items()}, [11])
    for k in b:
        assert torch.equal(alone[k], a1[k][1:])
    # over many draws both transforms happen about as often as asked
    aug = PairAugmentation(opts, 3)
    one = {k: v[:1] for k, v in b.items()}
    swapped = warped = 0
    for d in range(200):
        out = aug(one, [d])
        is_swapped = torch.equal(out["moving"], one["fixed"])
        swapped += is_swapped
        source = one["moving"] if is_swapped else one["fixed"]
        warped += not torch.equal(out["fixed"], source)
    assert 70 < swapped < 130 and 70 < warped < 130


def test_warp_fixed_resamples_the_fixed_image_and_labels_by_one_field():
    b = _batch(1)
    b["fixed_label_map"] = (b["fixed"] > 2.5).to(torch.int32)  # labels that follow the image
    out = PairAugmentation({"warpFixed": {"probability": 1.0, "maxDisplacement": 1.5, "spacing": 4.0}}, 0)(b, [0])
    assert torch.equal(out["moving"], b["moving"])
    g = PairAugmentation({"warpFixed": {"probability": 1.0, "maxDisplacement": 1.5, "spacing": 4.0}}, 0)._generator(0)
    torch.rand((), generator=g)  # the swap draw
    torch.rand((), generator=g)  # the warp draw
    w = control_point_field((12, 16, 10), 1.5, 4.0, g)
    assert torch.allclose(out["fixed"], warp(b["fixed"], w))
    assert torch.equal(out["fixed_label_map"], warp(b["fixed_label_map"].float(), w, mode="nearest").to(torch.int32))
    assert not torch.equal(out["fixed"], b["fixed"])


def test_control_point_field_is_bounded_and_does_not_fold_below_a_sixth_of_the_spacing():
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        w = control_point_field((24, 32, 20), 1.3, 8.0, g)
        assert w.shape == (1, 3, 24, 32, 20)
        assert float(w.abs().max()) <= 1.3 + 1e-6
        assert float(w.abs().max()) > 0.5  # it does move things
        assert float(jacobian_determinant(w[0].numpy()).min()) > 0


def test_flip_mirrors_both_images_and_labels_along_the_drawn_nifti_axes():
    b = _batch(1)
    out = PairAugmentation({"flip": {"probability": 1.0, "axes": [0, 2]}}, 0)(b, [0])
    # NIfTI axis 0 is the last tensor dim (I), axis 2 the first spatial one (K)
    for k in b:
        assert torch.equal(out[k], torch.flip(b[k], [4, 2]))
    # the swap and warpFixed draws come first and are unchanged by a flip option that is off
    opts = {"swap": 0.5, "warpFixed": {"probability": 0.5, "maxDisplacement": 1.5, "spacing": 4.0}}
    plain = PairAugmentation(opts, 3)(b, [7])
    off = PairAugmentation({**opts, "flip": {"probability": 0.0, "axes": [0]}, "warpBoth": {"probability": 0.0, "maxDisplacement": 1.0, "spacing": 4.0}}, 3)(b, [7])
    for k in b:
        assert torch.equal(plain[k], off[k])
    # at probability 0.5 per axis, about half the draws mirror axis 0
    aug = PairAugmentation({"flip": {"probability": 0.5, "axes": [0]}}, 1)
    flipped = sum(not torch.equal(aug(b, [d])["moving"], b["moving"]) for d in range(200))
    assert 70 < flipped < 130


def test_warp_both_resamples_moving_and_fixed_by_the_same_field():
    b = _batch(1)
    opts = {"warpBoth": {"probability": 1.0, "maxDisplacement": 1.5, "spacing": 4.0}}
    out = PairAugmentation(opts, 0)(b, [0])
    g = PairAugmentation(opts, 0)._generator(0)
    torch.rand((), generator=g)  # the swap draw
    torch.rand((), generator=g)  # the warpFixed draw
    torch.rand((), generator=g)  # the warpBoth draw
    w = control_point_field((12, 16, 10), 1.5, 4.0, g)
    for side in ("moving", "fixed"):
        assert torch.allclose(out[side], warp(b[side], w))
        key = f"{side}_label_map"
        assert torch.equal(out[key], warp(b[key].float(), w, mode="nearest").to(torch.int32))
