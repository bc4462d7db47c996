"""vit — standard pre-norm transformer blocks trained from scratch (the "Standard ViT" ablation).

Block:  x ← x + MHSA(LN(x));  x ← x + W₂ GELU(W₁ LN(x)),  hidden = mlpRatio · width.
Bidirectional attention over all tokens, no positional encoding of its own (the tokens node carries
one), no final norm. ``forward(tokens (N, L, width)) -> (N, L, width)``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # no mask: every token sees every token
        return self.proj(y.transpose(1, 2).reshape(n, length, width))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        hidden = int(round(width * mlp_ratio))
        self.norm1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def build(options: dict, inputs: dict) -> nn.Module:
    # The shape rule has checked width % heads == 0 and that the tokens are ``width`` wide.
    width = int(options["width"])
    depth, heads, ratio = int(options["depth"]), int(options["heads"]), float(options["mlpRatio"])
    return nn.Sequential(*[Block(width, heads, ratio) for _ in range(depth)])
