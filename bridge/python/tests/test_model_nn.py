"""llmed.nn: warping convention, field resampling, token reshapes, conv blocks and initialisation.

The multiscale decoder's tests are in plugins/multiscale/tests, the MSE loss's in plugins/mse/tests."""

from __future__ import annotations

import pytest
import torch

from llmed.nn import (
    ConvBlock,
    DownConv,
    SpatialTransformer,
    TokenInstanceNorm,
    identity_grid,
    resize_image,
    tokens_from_volume,
    torch_spatial,
    unshuffle_tokens,
    upsample_field,
    use_onednn_conv3d,
    volume_from_tokens,
    warp,
)


def ramp_volume(k=5, j=6, i=7):
    """image[k, j, i] = 100k + 10j + i: every voxel's value spells out its (k, j, i) index."""
    kk, jj, ii = torch.meshgrid(torch.arange(k), torch.arange(j), torch.arange(i), indexing="ij")
    return (100 * kk + 10 * jj + ii).float()[None, None]


@pytest.mark.parametrize("channel,axis", [(0, 4), (1, 3), (2, 2)])
def test_warp_constant_shift_moves_along_the_channel_s_nifti_axis(channel, axis):
    # field channel 0 = displacement along i (last torch axis), 1 along j, 2 along k — no channel flip
    img = ramp_volume()
    field = torch.zeros(1, 3, *img.shape[2:])
    field[:, channel] = 1.0
    out = warp(img, field)
    n = img.shape[axis]
    inner = out.narrow(axis, 0, n - 1)
    expected = img.narrow(axis, 1, n - 1)  # out(p) = img(p + e_c)
    assert torch.allclose(inner, expected, atol=1e-4)
    assert torch.all(out.narrow(axis, n - 1, 1) < 0.5 * img.narrow(axis, n - 1, 1) + 1e-3)  # beyond the edge: zeros padding blends in


def test_warp_fractional_shift_interpolates_linearly():
    img = ramp_volume()
    field = torch.zeros(1, 3, *img.shape[2:])
    field[:, 0] = 0.25  # along i, where the ramp has slope 1
    field[:, 2] = -0.5  # along k, slope 100
    out = warp(img, field)
    expected = img + 0.25 - 50.0
    assert torch.allclose(out[..., 1:, :, :-1], expected[..., 1:, :, :-1], atol=1e-3)


def test_warp_nearest_picks_the_nearest_voxel():
    img = ramp_volume()
    field = torch.zeros(1, 3, *img.shape[2:])
    field[:, 1] = 0.8
    out = warp(img, field, mode="nearest")
    assert torch.equal(out[..., :-1, :], img[..., 1:, :])


def test_coarse_field_samples_the_full_image_like_the_corner_aligned_resize():
    img = torch.rand(1, 1, 16, 12, 8)
    zero = torch.zeros(1, 3, 4, 3, 2)
    assert torch.allclose(warp(img, zero), resize_image(img, (4, 3, 2)), atol=1e-5)
    # a one-voxel shift on the coarse grid moves by (N−1)/(n−1) full-res voxels along that axis
    shift = zero.clone()
    shift[:, 0] = 1.0
    out = warp(img, shift)  # coarse i = 0 shifted by one coarse voxel reads coarse i = 1 = full-res i = 7
    assert torch.allclose(out[0, 0, :, :, 0], resize_image(img, (4, 3, 2))[0, 0, :, :, 1], atol=1e-5)


def test_spatial_transformer_caches_its_grid_per_size():
    st = SpatialTransformer()
    img = torch.rand(1, 1, 4, 4, 4)
    st(img, torch.zeros(1, 3, 4, 4, 4))
    st(img, torch.zeros(1, 3, 2, 2, 2))
    st(img.expand(2, -1, -1, -1, -1), torch.zeros(2, 3, 4, 4, 4))
    assert len(st._grids) == 2
    assert st.state_dict() == {}


def test_identity_grid_channels_are_i_j_k():
    g = identity_grid((2, 3, 4))
    assert g.shape == (1, 2, 3, 4, 3)
    assert g[0, 1, 2, 3].tolist() == [3.0, 2.0, 1.0]  # (i, j, k) at torch index (k=1, j=2, i=3)


def test_upsample_field_rescales_by_the_corner_aligned_factor_unless_reproducing_the_bug():
    # Channel c lives along NIfTI axis c = torch axis (2 - c); a (K,J,I) = (2,3,4) grid doubled to (4,6,8)
    # scales channel 0 (I: 4→8) by 7/3, channel 1 (J: 3→6) by 5/2, channel 2 (K: 2→4) by 3/1.
    f = torch.ones(1, 3, 2, 3, 4)
    up = upsample_field(f)
    assert up.shape == (1, 3, 4, 6, 8)
    for c, factor in enumerate([7 / 3, 5 / 2, 3.0]):
        assert torch.allclose(up[:, c], torch.full_like(up[:, c], factor))
    assert torch.allclose(upsample_field(f, rescale=False), torch.ones_like(up))
    aniso = upsample_field(f, size=(2, 6, 12))
    assert torch.allclose(aniso[:, 0], torch.full_like(aniso[:, 0], 11 / 3))
    assert torch.allclose(aniso[:, 1], torch.full_like(aniso[:, 1], 5 / 2))
    assert torch.allclose(aniso[:, 2], torch.full_like(aniso[:, 2], 1.0))


def test_tokens_flatten_with_i_fastest_and_unshuffle_layout():
    vol = ramp_volume(2, 3, 4)
    t = tokens_from_volume(vol)
    assert t.shape == (1, 24, 1)
    assert t[0, :5, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 10.0]
    assert torch.equal(volume_from_tokens(t, (2, 3, 4)), vol)
    # unshuffle: token (k, j, i) holds a C×2×2×2 block that lands at (2k + d, 2j + h, 2i + w)
    grid = (1, 2, 2)
    c, b = 3, 2
    tokens = torch.arange(4 * c * 8, dtype=torch.float32).view(1, 4, c * 8)
    vol = unshuffle_tokens(tokens, grid, b)
    assert vol.shape == (1, c, 2, 4, 4)
    token, ch, d, h, w = 3, 2, 1, 0, 1  # token 3 = (k 0, j 1, i 1)
    assert vol[0, ch, 0 * 2 + d, 1 * 2 + h, 1 * 2 + w] == tokens[0, token, ch * 8 + d * 4 + h * 2 + w]


def test_token_instance_norm_normalises_each_channel_over_tokens():
    x = torch.randn(2, 10, 6) * 3 + torch.arange(6.0)
    y = TokenInstanceNorm(6)(x)
    assert torch.allclose(y.mean(dim=1), torch.zeros(2, 6), atol=1e-5)
    assert torch.allclose(y.var(dim=1, unbiased=False), torch.ones(2, 6), atol=1e-3)
    assert not torch.allclose(y.mean(dim=2), torch.zeros(2, 10), atol=1e-3)


def test_conv_blocks_shapes():
    x = torch.rand(1, 2, 8, 8, 8)
    assert ConvBlock(2, 5)(x).shape == (1, 5, 8, 8, 8)
    assert DownConv(2, 5)(x).shape == (1, 5, 4, 4, 4)
    assert torch_spatial([64, 80, 48]) == (48, 80, 64)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
def test_onednn_conv3d_matches_the_stock_path_in_values_gradients_and_export():
    torch.manual_seed(0)
    block = torch.nn.Sequential(ConvBlock(2, 16), DownConv(16, 8))
    x = torch.randn(1, 2, 16, 12, 10)

    def run():
        block.zero_grad()
        xi = x.clone().requires_grad_()
        y = block(xi)
        (y**2).sum().backward()
        return y.detach(), xi.grad.clone(), [p.grad.clone() for p in block.parameters()]

    try:
        assert use_onednn_conv3d(False) is False
        y0, gx0, gp0 = run()
        assert use_onednn_conv3d(True) is True
        y1, gx1, gp1 = run()
        assert torch.allclose(y0, y1, atol=1e-4, rtol=1e-4)
        assert torch.allclose(gx0, gx1, atol=1e-3, rtol=1e-3)
        for a, b in zip(gp0, gp1):
            assert torch.allclose(a, b, atol=1e-3, rtol=1e-3)
        # exported graphs keep plain Conv nodes (the oneDNN route is skipped under ONNX export)
        import io

        import onnx

        buf = io.BytesIO()
        torch.onnx.export(block.eval(), (x,), buf, opset_version=20, dynamo=False)
        ops = {n.op_type for n in onnx.load_from_string(buf.getvalue()).graph.node}
        assert "Conv" in ops and not any("mkldnn" in o.lower() for o in ops)
    finally:
        use_onednn_conv3d(False)


def test_onednn_route_yields_to_cpu_bf16_autocast():
    """Under CPU bf16 autocast the convolutions run PyTorch's own bf16 kernels (the float32 oneDNN route would
    silently keep them float32); outside it the route is taken again."""
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(2, 4, 3, padding=1)
    x = torch.randn(1, 2, 8, 6, 6, requires_grad=True)
    try:
        use_onednn_conv3d(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x)
        assert y.dtype == torch.bfloat16
        y.float().sum().backward()
        assert conv.weight.grad is not None and conv.weight.grad.dtype == torch.float32
        ref = conv(x.detach())
        assert ref.dtype == torch.float32 and torch.allclose(y.float(), ref, atol=5e-2, rtol=5e-2)
    finally:
        use_onednn_conv3d(False)


def test_he_init_keeps_the_spatial_spread_through_a_deep_stack_and_flow_heads_start_at_zero():
    from llmed.nn import FlowHead, initialise

    torch.manual_seed(0)
    x = torch.rand(1, 1, 16, 16, 16)

    def spread(init: str) -> float:
        torch.manual_seed(1)
        stack = torch.nn.Sequential(ConvBlock(1, 8), DownConv(8, 8), ConvBlock(8, 8), DownConv(8, 8), ConvBlock(8, 8))
        initialise(stack, init)
        with torch.no_grad():
            return float(stack(x).std(dim=(2, 3, 4)).mean())

    # PyTorch's default shrinks the spread ~0.4x per conv + LeakyReLU; He keeps it of the input's order
    assert spread("he") > 0.3 * float(x.std())
    assert spread("pytorch") < 0.1 * spread("he")
    head = FlowHead(8, 4, init="he")
    assert float(head[1].weight.abs().max()) < 1e-4 and float(head[1].bias.abs().max()) == 0.0
    assert float(head(torch.randn(1, 8, 4, 4, 4)).abs().max()) < 1e-2
    transposed = initialise(torch.nn.ConvTranspose3d(8, 4, 2, stride=2), "he")
    # k2/s2: each output voxel sums C_in = 8 inputs, so the weights are N(0, 2/(1.04 * 8))
    assert abs(float(transposed.weight.std()) - (2 / 1.04 / 8) ** 0.5) < 0.1
    with pytest.raises(ValueError, match="init must be one of he, pytorch"):
        initialise(head, "xavier")


def test_onednn_backward_matches_the_stock_gradients_for_batches_strides_dilation_and_no_bias():
    torch.manual_seed(0)
    net = torch.nn.Sequential(ConvBlock(2, 6), DownConv(6, 4), torch.nn.Conv3d(4, 4, 3, padding=2, dilation=2), torch.nn.Conv3d(4, 3, 1, bias=False), torch.nn.Conv3d(3, 3, 3, padding=0))
    x = torch.randn(2, 2, 12, 10, 8)

    def grads(input_grad: bool):
        net.zero_grad()
        xi = x.clone().requires_grad_(input_grad)
        y = net(xi)
        (y.sin() * y).sum().backward()
        return [y.detach()] + ([xi.grad.clone()] if input_grad else []) + [p.grad.clone() for p in net.parameters()]

    try:
        for input_grad in (True, False):
            use_onednn_conv3d(False)
            stock = grads(input_grad)
            use_onednn_conv3d(True)
            ours = grads(input_grad)
            for a, b in zip(stock, ours):
                assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), float((a - b).abs().max())
    finally:
        use_onednn_conv3d(False)
