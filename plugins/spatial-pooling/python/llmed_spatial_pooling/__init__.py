"""spatial-pooling — M3D's spatial pooling projector (spec §3.2 P1–P2).

``build(options, inputs)`` → module, ``forward(tokens (N, L, C)) -> (N, L', outWidth)``. The tokens'
grid comes from the composed spec (``inputs.tokens.grid``, NIfTI order [gi, gj, gk]); the sequence is the
raster (k, j, i) with i fastest, as every llmed encoder emits it, so the tokens are put back on a
(N, C, gk, gj, gi) map, pooled with kernel = stride = ``pool`` and flattened in the same order. A token
count that does not fill the grid is an error, never a silent reshape across non-neighbouring patches
(Med3DLLM's (256, 256, 32) vs 32×256×256 mix-up, spec §3.11 item 1).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class SpatialPoolingProjector(nn.Module):
    changes_length = True  # the token count out is not the count in (pooling / a mean token)

    def __init__(self, options: dict, tokens: dict):
        super().__init__()
        gi, gj, gk = (int(n) for n in tokens["grid"])
        self.grid_kji = (gk, gj, gi)
        self.pool = int(options["pool"])
        self.mode = str(options["pooling"])
        width, out = int(tokens["width"]), int(options["outWidth"])
        layers: list[nn.Module] = [nn.Linear(width, out)]
        if int(options["layers"]) == 2:
            layers += [nn.GELU(), nn.Linear(out, out)]
        self.mlp = nn.Sequential(*layers)

    def to_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        n, length, c = tokens.shape
        gk, gj, gi = self.grid_kji
        if length != gk * gj * gi:
            raise ValueError(f"spatial-pooling: {length} tokens do not fill the grid {gi}×{gj}×{gk} (i×j×k) of the composed spec")
        return tokens.transpose(1, 2).reshape(n, c, gk, gj, gi)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        grid = self.to_grid(tokens)
        pool = F.avg_pool3d if self.mode == "avg" else F.max_pool3d
        pooled = pool(grid, kernel_size=self.pool, stride=self.pool)
        return self.mlp(pooled.flatten(2).transpose(1, 2))


def build(options: dict, inputs: dict | None = None) -> SpatialPoolingProjector:
    tokens = (inputs or {}).get("tokens")
    if not tokens:
        raise ValueError("spatial-pooling needs the token shape (inputs.tokens) of the composed spec")
    return SpatialPoolingProjector(options, tokens)
