"""vit3d — M3D-CLIP's ViT3D as an llmed Encoder (spec §3.2 V1–V5).

``build(options, inputs)`` → :class:`ViT3D`, ``forward(image (N, 1, K, J, I)) -> tokens (N, L, width)``.

Layout (the one MONAI 1.3's perceptron ``PatchEmbeddingBlock`` uses, which M3D-CLIP's weights were trained
with): a volume (N, C, K, J, I) is cut into patches pk×pj×pi; each patch becomes one vector ordered
(pk, pj, pi, c) and tokens are ordered over the patch grid (k', j', i') with i' fastest. The fused qkv
projection's 3·width outputs are [Q of all heads | K of all heads | V of all heads], each head contiguous.

``options.weights`` loads M3D-CLIP vision weights strictly: MONAI key names are mapped onto this module's
(:func:`map_monai_keys`); missing and unexpected keys are named; files are read with safetensors or with
``torch.load(weights_only=True)``, so no pickled object is ever executed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmed.weights import load_strict, read_state_dict


def patchify(x: torch.Tensor, patch_kji: tuple[int, int, int]) -> torch.Tensor:
    """(N, C, K, J, I) → (N, K'·J'·I', pk·pj·pi·C): MONAI's "b c (h p1) (w p2) (d p3) -> b (h w d) (p1 p2 p3 c)"."""
    n, c, k, j, i = x.shape
    pk, pj, pi = patch_kji
    if k % pk or j % pj or i % pi:
        raise ValueError(f"volume {k}×{j}×{i} (torch K×J×I) is not divisible by patch {pk}×{pj}×{pi}")
    x = x.reshape(n, c, k // pk, pk, j // pj, pj, i // pi, pi)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)
    return x.reshape(n, (k // pk) * (j // pj) * (i // pi), pk * pj * pi * c)


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, qkv_bias: bool, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=qkv_bias)
        self.proj = nn.Linear(width, width)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(n, length, width))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_width: int, qkv_bias: bool, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads, qkv_bias, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, mlp_width)
        self.fc2 = nn.Linear(mlp_width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.drop(self.fc2(self.drop(F.gelu(self.fc1(self.norm2(x))))))


class ViT3D(nn.Module):
    report_encoder = True  # call convention of report encoders: forward(image) -> tokens

    def __init__(self, options: dict, image: dict):
        super().__init__()
        o = options
        pi, pj, pk = (int(n) for n in o["patch"])  # options are in NIfTI order (i, j, k)
        si, sj, sk = (int(n) for n in image["spatial"])
        self.patch_kji = (pk, pj, pi)
        self.grid_kji = (sk // pk, sj // pj, si // pi)
        count = self.grid_kji[0] * self.grid_kji[1] * self.grid_kji[2]
        width = int(o["width"])
        channels = int(image.get("channels", 1))
        self.embed = nn.Linear(pk * pj * pi * channels, width)
        self.position = nn.Parameter(torch.zeros(1, count, width))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.use_cls = bool(o["cls"])
        self.cls = nn.Parameter(torch.zeros(1, 1, width)) if self.use_cls else None
        self.blocks = nn.ModuleList(Block(width, int(o["heads"]), int(o["mlpWidth"]), bool(o["qkvBias"]), float(o["dropout"])) for _ in range(int(o["depth"])))
        self.norm = nn.LayerNorm(width)
        self.select = str(o["select"])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.embed(patchify(image, self.patch_kji)) + self.position
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        if self.cls is not None and self.select == "patch":
            x = x[:, 1:]
        return x


# MONAI 1.3 ViT key → this module's key (spec §3.2: the names M3D-CLIP's pretrained_ViT.bin uses).
_MONAI_RULES = [
    (r"^patch_embedding\.patch_embeddings\.1\.(weight|bias)$", r"embed.\1"),
    (r"^patch_embedding\.position_embeddings$", "position"),
    (r"^cls_token$", "cls"),
    (r"^blocks\.(\d+)\.norm1\.(weight|bias)$", r"blocks.\1.norm1.\2"),
    (r"^blocks\.(\d+)\.norm2\.(weight|bias)$", r"blocks.\1.norm2.\2"),
    (r"^blocks\.(\d+)\.attn\.qkv\.(weight|bias)$", r"blocks.\1.attn.qkv.\2"),
    (r"^blocks\.(\d+)\.attn\.out_proj\.(weight|bias)$", r"blocks.\1.attn.proj.\2"),
    (r"^blocks\.(\d+)\.mlp\.linear1\.(weight|bias)$", r"blocks.\1.fc1.\2"),
    (r"^blocks\.(\d+)\.mlp\.linear2\.(weight|bias)$", r"blocks.\1.fc2.\2"),
    (r"^norm\.(weight|bias)$", r"norm.\1"),
]
# Parts of MONAI's ViT that the vision tower does not use (the CLIP-pretraining classification head).
_MONAI_UNUSED = re.compile(r"^classification_head\.")
_PREFIXES = ("vision_encoder.", "vision_tower.vision_tower.", "vision_tower.", "model.vision_tower.vision_tower.")


def map_monai_keys(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a MONAI-1.3 ViT state dict to this module's names. Returns (mapped, ignored MONAI keys);
    a key no rule knows is kept under its own name so that the strict load names it as unexpected."""
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
            break
    mapped, ignored = {}, []
    for key, value in state.items():
        if _MONAI_UNUSED.match(key):
            ignored.append(key)
            continue
        for pattern, repl in _MONAI_RULES:
            if re.match(pattern, key):
                mapped[re.sub(pattern, repl, key)] = value
                break
        else:
            mapped[key] = value
    return mapped, ignored


def build(options: dict, inputs: dict | None = None) -> ViT3D:
    image = (inputs or {}).get("image") or {"channels": 1, "spatial": [256, 256, 32]}
    model = ViT3D(options, image)
    if options.get("weights"):
        path = Path(os.path.expanduser(str(options["weights"])))
        if not path.is_absolute():
            path = Path(options.get("workspaceRoot") or os.getcwd()) / path
        mapped, _ = map_monai_keys(read_state_dict(path))
        load_strict(model, mapped, str(path))
    if not options.get("trainable", True):
        model.requires_grad_(False)
    return model
