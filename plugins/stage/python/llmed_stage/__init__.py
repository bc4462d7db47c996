"""stage — output adapters: tokens → decoder feature maps at 1/8, 1/4, 1/2, full (spec §1.2 A1–A4).

Stage k (k = 0 coarsest):

    v_k = Linear(W → base·4^k)(t)                          (N, L, base·4^k)
    V_k = unshuffle "N (K J I) (C d h w) → N C (K d) (J h) (I w)",  d = h = w = 2^k, C = base/2^k
    A_k = ConvTranspose3d(C → C/2, k=2, s=2)(V_k)          grid 2^(k+1) × the token grid

With base 256 on a 1/16 token grid: 128 ch @ 1/8, 64 @ 1/4, 32 @ 1/2, 16 @ full.
``silentStart``: the upsamplers' weights (and biases) start at 0, so every A_k is exactly 0 at step 0;
their gradient is not (it is the unshuffled linear output times the decoder's gradient), so the token path
opens from the first step on. Why: He-initialised maps are the largest inputs of each decoder fusion (spatial
std 0.81 at full resolution vs 0.3-0.5 for the encoder skips), and a 36-token map carries no voxel-level
correspondence: LLaMA-Reg-C1 then grows a large field uncorrelated with the truth (cosine 0.02 at step 100,
lr 1e-3) where the same model with silent maps follows the truth (0.2-0.3) like the U-Net.
``forward(tokens) -> [A_0, …, A_{n−1}]`` (coarse → fine).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from llmed.nn import initialise, torch_spatial, unshuffle_tokens


class StageAdapters(nn.Module):
    def __init__(self, width: int, grid_ijk: list[int], base: int, stages: int):
        super().__init__()
        self.grid_kji = torch_spatial(grid_ijk)
        self.linears = nn.ModuleList()
        self.ups = nn.ModuleList()
        for k in range(stages):
            c = base // 2**k  # the shape rule has checked that base / 2^k is even for every stage
            self.linears.append(nn.Linear(width, base * 4**k))
            self.ups.append(nn.ConvTranspose3d(c, c // 2, kernel_size=2, stride=2))

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        return [up(unshuffle_tokens(lin(tokens), self.grid_kji, 2**k)) for k, (lin, up) in enumerate(zip(self.linears, self.ups))]


def build(options: dict, inputs: dict) -> nn.Module:
    t = inputs["tokens"]
    adapters = StageAdapters(int(t["width"]), list(t["grid"]), int(options["base"]), int(options["stages"]))
    # The upsamplers feed the decoder's LeakyReLU convolutions: the same signal-preserving init (llmed.nn.initialise),
    # unless the maps start silent.
    initialise(adapters, str(options["init"]))
    if options["silentStart"]:
        with torch.no_grad():
            for up in adapters.ups:
                up.weight.zero_()
                if up.bias is not None:
                    up.bias.zero_()
    return adapters
