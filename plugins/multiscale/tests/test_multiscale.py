"""The multiscale decoder: residual fields over the upsampled previous field, and cascade superposition.

(Moved from bridge/python/tests/test_model_nn.py with the decoder; the stage-scale check it had is the
shape rule's now and is tested in multiscale.test.ts.)
"""

from __future__ import annotations

import torch
from llmed_multiscale import MultiscaleDecoder

from llmed.nn import torch_spatial, upsample_field, warp

# The arguments the old constructor defaulted to; the factory now reads them from the filled-in options.
OLD_DEFAULTS = {"image_channels": 1, "negative_slope": 0.2, "init": "pytorch"}


def _decoder_inputs(spatial=(16, 16, 8), chans=(2, 4, 4, 8, 8), stage_ch=(8, 4, 2, 1)):
    levels = [{"scale": 2**l, "channels": c, "spatial": [n // 2**l for n in spatial]} for l, c in enumerate(chans)]
    stages = [{"scale": 8 // 2**k, "channels": c, "spatial": [n * 2**k // 8 for n in spatial]} for k, c in enumerate(stage_ch)]
    mk = lambda c, sp: torch.rand(1, c, *torch_spatial(sp))  # noqa: E731
    mp = [mk(l["channels"], l["spatial"]) for l in levels]
    fp = [mk(l["channels"], l["spatial"]) for l in levels]
    maps = [mk(s["channels"], s["spatial"]) for s in stages]
    moving = mk(1, spatial)
    return levels, stages, moving, mp, fp, maps


def test_multiscale_decoder_fields_are_upsampled_previous_plus_residual():
    levels, stages, moving, mp, fp, maps = _decoder_inputs()
    for rescale in (True, False):
        dec = MultiscaleDecoder(levels, stages, flow_hidden=4, rescale_upsampled_field=rescale, **OLD_DEFAULTS)
        out = dec(moving, None, mp, fp, maps)
        assert [tuple(f.shape) for f in out["fields"]] == [(1, 3, 2, 4, 4), (1, 3, 4, 8, 8), (1, 3, 8, 16, 16)]
        # zero the finest residual head: the full-res field must be exactly the upsampled 1/2 field
        with torch.no_grad():
            for p in dec.flow[-1][-1].parameters():
                p.zero_()
        out = dec(moving, None, mp, fp, maps)
        assert torch.allclose(out["fields"][-1], upsample_field(out["fields"][-2], rescale), atol=1e-6)
        assert torch.allclose(out["warped"][-1], warp(moving, out["fields"][-1]))


def test_cascade_step_adds_its_residual_to_the_previous_step_per_scale():
    levels, stages, moving, mp, fp, maps = _decoder_inputs()
    first = MultiscaleDecoder(levels, stages, flow_hidden=4, rescale_upsampled_field=True, **OLD_DEFAULTS)
    later = MultiscaleDecoder(levels, stages, flow_hidden=4, rescale_upsampled_field=True, fuse_previous=True, **OLD_DEFAULTS)
    prev = first(moving, None, mp, fp, maps)
    with torch.no_grad():
        for head in list(later.flow)[1:]:
            for p in head[-1].parameters():
                p.zero_()
    out = later(moving, None, None, None, maps, previous=prev)
    for a, b in zip(out["fields"], prev["fields"]):
        assert torch.allclose(a, b)


def test_field_scale_2_ends_at_half_resolution_and_upsamples_the_last_field():
    levels, stages, moving, mp, fp, maps = _decoder_inputs()
    dec = MultiscaleDecoder(levels, stages[:-1], flow_hidden=4, rescale_upsampled_field=True, field_scale=2, **OLD_DEFAULTS)
    out = dec(moving, None, mp, fp, maps[:-1])
    assert [tuple(f.shape) for f in out["fields"]] == [(1, 3, 2, 4, 4), (1, 3, 4, 8, 8), (1, 3, 8, 16, 16)]
    assert len(out["features"]) == 3  # no full-resolution stage
    assert torch.allclose(out["fields"][-1], upsample_field(out["fields"][-2], True, size=moving.shape[2:]), atol=1e-6)
    assert torch.allclose(out["warped"][-1], warp(moving, out["fields"][-1]))
    # the upsampled field is rescaled even where the released code's bug is reproduced for the stages
    buggy = MultiscaleDecoder(levels, stages[:-1], flow_hidden=4, rescale_upsampled_field=False, field_scale=2, **OLD_DEFAULTS)
    f = buggy(moving, None, mp, fp, maps[:-1])["fields"]
    assert torch.allclose(f[-1], upsample_field(f[-2], True, size=moving.shape[2:]), atol=1e-6)
    # the full-resolution field gets the gradient of a loss on it (the decoder's last head is its only source)
    f[-1].square().mean().backward()
    assert buggy.flow[-1][-1].weight.grad.abs().sum() > 0
