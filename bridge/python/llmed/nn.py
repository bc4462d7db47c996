"""Shared torch building blocks for llmed plugins (encoders, adapters, decoders, losses).

Only primitives live here (convolution blocks, initialisation, token norms and reshapes, the warp and
resampling); each named encoder, adapter, decoder and loss is in its own plugin folder.

Axis and field conventions (binding for every plugin)
-----------------------------------------------------
Shape dicts from the TypeScript composer give spatial triples in NIfTI axis order ``(i, j, k)``.
Torch holds the same volume as ``(N, C, K, J, I)``: the spatial axes reversed, so ``i`` is the last
(fastest) tensor axis. :func:`torch_spatial` converts a NIfTI triple to the torch order.

A displacement field is a tensor ``(N, 3, K, J, I)``. Channel ``c`` is the displacement along NIfTI
axis ``c`` — channel 0 along ``i``, 1 along ``j``, 2 along ``k`` — in voxels *of the field's own
grid*. Warping a moving image ``m`` by a field ``u`` gives

    (m ∘ φ)(p) = m(p + u(p)),   p a voxel index triple (i, j, k) of the field's grid.

The sample position ``q = p + u(p)`` is normalised per axis as ``x = 2·q / (n − 1) − 1`` with ``n`` the
size of the field's grid along that axis, and handed to ``F.grid_sample(..., align_corners=True)``.
``grid_sample``'s last grid dimension is ordered ``(x, y, z)`` = (last, middle, first tensor axis) =
``(I, J, K)`` = NIfTI ``(i, j, k)``: the field's channel order is already grid_sample's order, so no
channel flip is needed (LLaMA-Reg's released code stores (d, h, w) and has to reverse; we do not).

Because positions are normalised by the *field's* grid, a coarse field warps the *full-resolution*
image directly: grid point ``p`` of an ``n``-voxel axis lands on full-resolution coordinate
``p·(N − 1)/(n − 1)`` — the corner-aligned geometry of ``align_corners=True``. That is how LLaMA-Reg
forms its warped images at 1/4 and 1/2 (spec §1.3). :func:`resize_image` and :func:`upsample_field`
use the same corner-aligned geometry, so ``warp(m, zeros at 1/4) == resize_image(m, 1/4 size)``.

Upsampling a field by 2 multiplies its displacements by 2 (they are in voxels of the finer grid
afterwards). ``upsample_field(..., rescale=False)`` reproduces the released LLaMA-Reg code, which
forgets this (spec §1.12 item 4). Fields of different scales and cascade steps combine additively.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "torch_spatial",
    "ConvBlock",
    "DownConv",
    "use_onednn_conv3d",
    "FlowHead",
    "INIT_SCHEMES",
    "initialise",
    "TokenInstanceNorm",
    "identity_grid",
    "SpatialTransformer",
    "warp",
    "upsample_field",
    "resize_image",
    "tokens_from_volume",
    "volume_from_tokens",
    "unshuffle_tokens",
    "count_parameters",
]


def torch_spatial(spatial_ijk: Sequence[int]) -> tuple[int, int, int]:
    """NIfTI-order triple ``(i, j, k)`` → torch spatial order ``(K, J, I)``."""
    i, j, k = (int(n) for n in spatial_ijk)
    return (k, j, i)


# --------------------------------------------------------------------------------------------------
# Convolutional blocks
# --------------------------------------------------------------------------------------------------


class ConvBlock(nn.Sequential):
    """Two 3×3×3 convolutions (stride 1, padding 1, with bias), each followed by LeakyReLU.

    ``y = LReLU(W₂ * LReLU(W₁ * x + b₁) + b₂)``; channels ``in → out → out``. No normalisation
    (LLaMA-Reg has none anywhere).
    """

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float = 0.2):
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=1, padding=1),
            nn.LeakyReLU(negative_slope),
            nn.Conv3d(out_channels, out_channels, kernel_size=3, stride=1, padding=1),
            nn.LeakyReLU(negative_slope),
        )


_native_conv3d_forward = nn.Conv3d._conv_forward


class _OneDNNConv3dFunction(torch.autograd.Function):
    """A CPU float32 3-D convolution whose forward *and* backward run oneDNN kernels.

    The backward of a stride-1, undilated, ungrouped convolution is two more convolutions, which go to
    ``mkldnn_convolution`` directly instead of ``aten::convolution_backward`` (which picks its kernels by
    PyTorch's own size rule and, for most of our batch-1 layers, runs the slow im2col path):

    * ``∂L/∂x = conv(∂L/∂y, flip(W)ᵀ)`` with padding ``k − 1 − p`` (W's in/out channels swapped, kernel flipped);
    * ``∂L/∂W[o, i] = Σ_n conv(x[n, i], ∂L/∂y[n, o])``: the input with its channels as the batch,
      convolved with the output gradient as ``C_out`` kernels over the batch, padding ``p``;
    * ``∂L/∂b = Σ ∂L/∂y`` over batch and space.

    Other convolutions (strided, dilated, grouped) take ``aten::convolution_backward``. Not twice
    differentiable (no training code here needs it).
    """

    @staticmethod
    def forward(ctx, input, weight, bias, padding, stride, dilation, groups):
        ctx.save_for_backward(input, weight)
        ctx.conf = (padding, stride, dilation, groups, bias is not None)
        return torch.ops.aten.mkldnn_convolution(input, weight, bias, padding, stride, dilation, groups)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        input, weight = ctx.saved_tensors
        padding, stride, dilation, groups, has_bias = ctx.conf
        need_input, need_weight, need_bias = ctx.needs_input_grad[:3]
        kernel = list(weight.shape[2:])
        grad_out = grad_out.contiguous()
        if groups != 1 or any(s != 1 for s in stride) or any(d != 1 for d in dilation) or any(p > k - 1 for p, k in zip(padding, kernel)):
            gi, gw, gb = torch.ops.aten.convolution_backward(
                grad_out, input, weight, [weight.shape[0]] if has_bias else None, stride, padding, dilation, False, [0, 0, 0], groups, [need_input, need_weight, need_bias and has_bias]
            )
            return gi, gw, gb, None, None, None, None
        gi = gw = gb = None
        if need_input:
            flipped = weight.flip(2, 3, 4).transpose(0, 1).contiguous()
            gi = torch.ops.aten.mkldnn_convolution(grad_out, flipped, None, [k - 1 - p for p, k in zip(padding, kernel)], [1, 1, 1], [1, 1, 1], 1)
        if need_weight:
            gw = torch.ops.aten.mkldnn_convolution(input.transpose(0, 1).contiguous(), grad_out.transpose(0, 1).contiguous(), None, padding, [1, 1, 1], [1, 1, 1], 1).transpose(0, 1).contiguous()
        if need_bias and has_bias:
            gb = grad_out.sum((0, 2, 3, 4))
        return gi, gw, gb, None, None, None, None


def _onednn_conv3d_forward(self: nn.Conv3d, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    if (
        input.device.type == "cpu"
        and input.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")  # bf16 autocast: PyTorch's own bf16 oneDNN kernels
        and self.padding_mode == "zeros"
        and not isinstance(self.padding, str)
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
        and not torch.onnx.is_in_onnx_export()
    ):
        conf = (list(self.padding), list(self.stride), list(self.dilation), self.groups)
        if torch.is_grad_enabled() and (input.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)):
            return _OneDNNConv3dFunction.apply(input, weight, bias, *conf)
        return torch.ops.aten.mkldnn_convolution(input, weight, bias, *conf)
    return _native_conv3d_forward(self, input, weight, bias)


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic (AMX-BF16 or AVX512-BF16): there bf16 autocast pays off."""
    try:
        flags = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def use_onednn_conv3d(enabled: bool = True) -> bool:
    """Route every CPU float32 ``nn.Conv3d`` (ours and plugins') through oneDNN; returns whether it is on.

    Why: PyTorch picks oneDNN for a CPU convolution by a rule written for 2-D images (batch > 1, kernel
    > 3, groups > 1, or N·C·D·H > 20480); most of our batch-1 3-D convolutions miss it and run
    ``aten::slow_conv3d`` (im2col + GEMM): a 16→16 convolution at 32³ takes 144 ms forward+backward that
    way and 101 ms with the forward on oneDNN; whole training steps ran 1.12-1.15x faster with the forward
    alone (bench/training/cpu-conv.ts). The backward of stride-1 convolutions now runs oneDNN too
    (:class:`_OneDNNConv3dFunction`); strided ones keep ``aten::convolution_backward``. Same weights, same
    output and gradients to float rounding (~1e-6 relative). ONNX export and tracing, CUDA,
    half precision and non-zero padding modes keep the stock path, so exported graphs hold plain Conv.
    """
    on = enabled and torch.backends.mkldnn.is_available()
    nn.Conv3d._conv_forward = _onednn_conv3d_forward if on else _native_conv3d_forward  # type: ignore[method-assign]
    return on


class DownConv(nn.Conv3d):
    """Stride-2 3×3×3 convolution with padding 1 and **no activation** (LLaMA-Reg's ``DownConv``).

    Halves every spatial axis of an even-sized input: ``n → n/2``.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=3, stride=2, padding=1)


INIT_SCHEMES = ("he", "pytorch")


def initialise(module: nn.Module, scheme: str = "he", negative_slope: float = 0.2) -> nn.Module:
    """Initialise every ``Conv3d`` / ``ConvTranspose3d`` of ``module`` by ``scheme``; returns the module.

    ``'he'``: weights ``N(0, gain² / fan_in)`` with the LeakyReLU gain ``sqrt(2 / (1 + slope²))``, biases 0.
    ``fan_in`` is what one output voxel really sums: ``C_in·k³`` for a convolution, ``C_in·k³/s³`` for a
    transposed one (``C_in`` for LLaMA-Reg's k2/s2 upsamplers; PyTorch's own fan of a transposed weight
    is ``C_out·k³``).

    ``'pytorch'``: leave PyTorch's default (``kaiming_uniform(a=√5)``: weight variance ``1/(3·fan_in)``,
    biases ``U(±1/√fan_in)``), as the released LLaMA-Reg code does (spec §1.2). Why it is not the default:
    without normalisation layers that init shrinks the signal's spatial spread by about 0.4 per
    conv + LeakyReLU, so at the demo's size the encoder's 1/16 features vary 40× less across the volume
    than its first layer's and the predicted field is a near-constant set by the biases (spatial std
    0.03 voxel around a 0.2-voxel offset); the first few hundred CPU steps then only move that offset
    (bench/results/learning-diagnosis.md). The papers' 100k+ GPU iterations get past it; a CPU budget does not.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init must be one of {', '.join(INIT_SCHEMES)}, got {scheme!r}")
    if scheme == "pytorch":
        return module
    gain = (2.0 / (1.0 + negative_slope**2)) ** 0.5
    for m in module.modules():
        if isinstance(m, nn.ConvTranspose3d):
            taps = m.weight[0, 0].numel() / max(1, int(torch.tensor(m.stride).prod()))
            fan_in = m.in_channels // m.groups * max(1.0, taps)
        elif isinstance(m, nn.Conv3d):
            fan_in = m.weight[0].numel()
        else:
            continue
        with torch.no_grad():
            m.weight.normal_(0.0, gain / fan_in**0.5)
            if m.bias is not None:
                m.bias.zero_()
    return module


class FlowHead(nn.Sequential):
    """Field predictor: Conv3d(in → hidden, k3) then Conv3d(hidden → 3, k3), no activation between.

    ``init='pytorch'``: PyTorch default initialisation, as in the released LLaMA-Reg code (spec §1.2
    flow rows). ``init='he'``: the hidden conv by :func:`initialise`, the output conv ``N(0, 1e-5)`` with
    zero bias (VoxelMorph's flow init), so every residual field starts at zero and the untrained model
    is the identity map rather than a random offset of a few tenths of a voxel.
    """

    def __init__(self, in_channels: int, hidden: int, init: str = "pytorch"):
        super().__init__(
            nn.Conv3d(in_channels, hidden, kernel_size=3, padding=1),
            nn.Conv3d(hidden, 3, kernel_size=3, padding=1),
        )
        initialise(self[0], init)
        if init == "he":
            with torch.no_grad():
                self[1].weight.normal_(0.0, 1e-5)
                self[1].bias.zero_()


class TokenInstanceNorm(nn.Module):
    """Instance normalisation of a token sequence ``(N, L, C)`` over its ``L`` tokens, per channel.

    ``y[n, l, c] = (x[n, l, c] − mean_l x[n, ·, c]) / sqrt(var_l x[n, ·, c] + eps)``.

    ``nn.InstanceNorm1d`` expects ``(N, C, L)``; applied directly to ``(N, L, C)`` it would treat the
    tokens as channels and normalise each token over its features instead — a silent, different
    operation (spec §2.4). This wrapper transposes around it.
    """

    def __init__(self, channels: int, eps: float = 1e-5, affine: bool = False):
        super().__init__()
        self.norm = nn.InstanceNorm1d(channels, eps=eps, affine=affine)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.norm(tokens.transpose(1, 2)).transpose(1, 2)


# --------------------------------------------------------------------------------------------------
# Warping and resampling
# --------------------------------------------------------------------------------------------------


def identity_grid(size_kji: Sequence[int], device=None, dtype=torch.float32) -> torch.Tensor:
    """Voxel-index grid ``(1, K, J, I, 3)``; last axis ``(i, j, k)``, i.e. grid_sample's ``(x, y, z)``."""
    k, j, i = (int(n) for n in size_kji)
    kk, jj, ii = torch.meshgrid(
        torch.arange(k, device=device, dtype=dtype),
        torch.arange(j, device=device, dtype=dtype),
        torch.arange(i, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack((ii, jj, kk), dim=-1).unsqueeze(0)


def _normaliser(size_kji: Sequence[int], device, dtype) -> torch.Tensor:
    """Per-channel factor ``2/(n − 1)`` in channel order ``(i, j, k)``; a 1-voxel axis maps to 0."""
    k, j, i = (int(n) for n in size_kji)
    return torch.tensor([2.0 / max(n - 1, 1) for n in (i, j, k)], device=device, dtype=dtype)


class SpatialTransformer(nn.Module):
    """Warp an image by a displacement field: ``out(p) = image(p + u(p))`` on the field's grid.

    ``image`` is ``(N, C, K', J', I')`` (any grid, usually full resolution); ``field`` is
    ``(N, 3, K, J, I)`` in voxels of its own grid (module docstring). The output is ``(N, C, K, J, I)``.
    Trilinear (``mode='bilinear'``) for images and soft labels, ``'nearest'`` for hard labels; samples
    outside the image read 0 (``padding_mode='zeros'``, as LLaMA-Reg and VoxelMorph).

    The normalised identity grid ``2p/(n−1) − 1`` is cached per (grid size, device) — a plain dict,
    not a buffer, so it never enters a state dict and any field size works. Sampling runs in float32.
    """

    def __init__(self, mode: str = "bilinear", padding_mode: str = "zeros", cache_size: int = 8):
        super().__init__()
        if mode not in ("bilinear", "nearest"):
            raise ValueError(f"warp mode must be 'bilinear' or 'nearest', got {mode!r}")
        self.mode = mode
        self.padding_mode = padding_mode
        self.cache_size = cache_size
        self._grids: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def _grid(self, size_kji: tuple[int, int, int], device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        key = (size_kji, str(device), dtype)
        hit = self._grids.get(key)
        if hit is None:
            scale = _normaliser(size_kji, device, dtype)
            hit = (identity_grid(size_kji, device, dtype) * scale - 1.0, scale)
            self._grids[key] = hit
            while len(self._grids) > self.cache_size:
                self._grids.popitem(last=False)
        else:
            self._grids.move_to_end(key)
        return hit

    def forward(self, image: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
        if field.dim() != 5 or field.shape[1] != 3:
            raise ValueError(f"a displacement field is (N, 3, K, J, I); got {tuple(field.shape)}")
        if image.dim() != 5:
            raise ValueError(f"an image is (N, C, K, J, I); got {tuple(image.shape)}")
        size = tuple(field.shape[2:])
        # Positions are always formed in float32: under AMP a bf16 grid would resolve [-1, 1] in steps of
        # 1/128, more than a voxel on a 160-voxel axis.
        base, scale = self._grid(size, field.device, torch.float32)
        # (N, 3, K, J, I) → (N, K, J, I, 3): channel (i, j, k) becomes grid_sample's (x, y, z) as is.
        grid = base + field.permute(0, 2, 3, 4, 1).float() * scale
        out = F.grid_sample(image.float(), grid, mode=self.mode, padding_mode=self.padding_mode, align_corners=True)
        return out if image.dtype == torch.float32 else out.to(image.dtype)


_warpers: dict[tuple[str, str], SpatialTransformer] = {}


def warp(image: torch.Tensor, field: torch.Tensor, mode: str = "bilinear", padding_mode: str = "zeros") -> torch.Tensor:
    """Functional :class:`SpatialTransformer` (shares one grid cache per mode): ``image(p + u(p))``."""
    key = (mode, padding_mode)
    w = _warpers.get(key)
    if w is None:
        w = _warpers[key] = SpatialTransformer(mode, padding_mode)
    return w(image, field)


def upsample_field(field: torch.Tensor, rescale: bool = True, size: Sequence[int] | None = None) -> torch.Tensor:
    """Resample a displacement field to a finer grid (default ×2 per axis), trilinear, corner-aligned.

    With ``rescale`` the displacement along axis ``c`` is multiplied by ``(n_out−1)/(n_in−1)`` of that
    axis: displacements are in voxels of the field's own grid, and with corner-aligned geometry (the
    warp's ``align_corners=True``) one coarse voxel spans that many fine voxels. For 16 → 32 that is
    2.067, not 2; VoxelMorph's ResizeTransform uses the plain ratio, which is slightly inconsistent with
    its own corner-aligned warp. The TypeScript twin (``upsampleField`` in @llmed/imaging) uses the same
    factor and the two are cross-checked.
    ``rescale=False`` keeps the values (the released LLaMA-Reg code's bug, spec §1.12 item 4).
    ``size`` is in torch order ``(K, J, I)``.
    """
    in_size = tuple(field.shape[2:])
    out_size = tuple(int(n) for n in size) if size is not None else tuple(2 * n for n in in_size)
    up = F.interpolate(field, size=out_size, mode="trilinear", align_corners=True)
    if not rescale:
        return up
    # channel order (i, j, k) = torch axes reversed
    factors = [(out_size[2 - c] - 1) / (in_size[2 - c] - 1) if in_size[2 - c] > 1 else out_size[2 - c] / in_size[2 - c] for c in range(3)]
    if all(f == factors[0] for f in factors):
        return up * factors[0]
    return up * torch.tensor(factors, device=up.device, dtype=up.dtype).view(1, 3, 1, 1, 1)


def resize_image(image: torch.Tensor, size_kji: Sequence[int], mode: str = "trilinear") -> torch.Tensor:
    """Resize an image (or one-hot labels) to ``size_kji`` (torch order), corner-aligned trilinear.

    ``align_corners=True`` makes the result the point samples of the image at the coarse grid's
    positions in the warp's geometry, so a zero field's warp equals this resize. (LLaMA-Reg's code
    uses ``nn.Upsample(scale_factor=0.25)`` with ``align_corners=False``, a half-voxel shift relative
    to its own warped images; we keep the two consistent instead.)
    """
    size = tuple(int(n) for n in size_kji)
    if tuple(image.shape[2:]) == size:
        return image
    if mode == "nearest":
        return F.interpolate(image, size=size, mode="nearest")
    return F.interpolate(image, size=size, mode=mode, align_corners=True)


# --------------------------------------------------------------------------------------------------
# Tokens ↔ volumes
# --------------------------------------------------------------------------------------------------


def tokens_from_volume(volume: torch.Tensor) -> torch.Tensor:
    """Flatten ``(N, C, K, J, I)`` into tokens ``(N, K·J·I, C)``: "N C K J I → N (K J I) C".

    Raster order with the NIfTI ``i`` axis varying fastest along the sequence.
    """
    return volume.flatten(2).transpose(1, 2)


def volume_from_tokens(tokens: torch.Tensor, grid_kji: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`tokens_from_volume`: ``(N, K·J·I, C)`` → ``(N, C, K, J, I)``."""
    k, j, i = (int(n) for n in grid_kji)
    n, length, c = tokens.shape
    if length != k * j * i:
        raise ValueError(f"{length} tokens do not fill a {i}×{j}×{k} (i×j×k) grid")
    return tokens.transpose(1, 2).reshape(n, c, k, j, i)


def unshuffle_tokens(tokens: torch.Tensor, grid_kji: Sequence[int], block: int) -> torch.Tensor:
    """ "Pixel-unshuffle" each token's vector into a ``block³`` cube of voxels.

    ``(N, K·J·I, C·d·h·w)`` → ``(N, C, K·d, J·h, I·w)`` with ``d = h = w = block``; in einops notation
    "N (K J I) (C d h w) → N C (K d) (J h) (I w)". The token grid becomes ``block`` times finer.
    """
    k, j, i = (int(n) for n in grid_kji)
    n, length, width = tokens.shape
    cube = block**3
    if length != k * j * i or width % cube:
        raise ValueError(f"cannot unshuffle {length}×{width} tokens on grid {i}×{j}×{k} into {block}³ blocks")
    c = width // cube
    x = tokens.reshape(n, k, j, i, c, block, block, block)
    x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)  # N C K d J h I w
    return x.reshape(n, c, k * block, j * block, i * block)


def count_parameters(module: nn.Module) -> dict:
    """``{'total', 'trainable', 'frozen'}`` parameter counts of a module (shared tensors counted once)."""
    seen: set[int] = set()
    total = trainable = 0
    for p in module.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return {"total": total, "trainable": trainable, "frozen": total - trainable}
