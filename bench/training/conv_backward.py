"""Per-layer CPU timing (not a test): the backward of one batch-1 3-D convolution (k3, stride 1, padding 1)
through ``aten::convolution_backward`` (PyTorch's own kernel choice) vs llmed's oneDNN backward
(``llmed.nn._OneDNNConv3dFunction``: two ``mkldnn_convolution`` calls), at the demo model's widths and grids.
Alternates the two, 5 repeats each, 2 threads; prints one JSON line per shape with the times, the ratio and
the largest relative difference of the three gradients.

    PYTHONPATH=bridge/python .venv/bin/python bench/training/conv_backward.py
"""

import json
import time

import torch

from llmed.nn import _OneDNNConv3dFunction

torch.set_num_threads(2)


def stock(x, w, b, g):
    return torch.ops.aten.convolution_backward(g, x, w, [w.shape[0]], [1, 1, 1], [1, 1, 1], [1, 1, 1], False, [0, 0, 0], 1, [True, True, True])


def onednn(x, w, b, g):
    class Ctx:
        saved_tensors = (x, w)
        conf = ([1, 1, 1], [1, 1, 1], [1, 1, 1], 1, True)
        needs_input_grad = (True, True, True)

    return _OneDNNConv3dFunction.backward(Ctx, g)[:3]


for channels, grid in [(8, (48, 64, 48)), (16, (24, 32, 24)), (16, (12, 16, 12)), (32, (6, 8, 6))]:
    x = torch.randn(1, channels, *grid)
    w = torch.randn(channels, channels, 3, 3, 3) * 0.1
    b = torch.zeros(channels)
    g = torch.randn(1, channels, *grid)
    diff = max(float((p - q).abs().max() / p.abs().max()) for p, q in zip(stock(x, w, b, g), onednn(x, w, b, g)))
    times = {"stock": [], "onednn": []}
    for _ in range(5):
        for name, fn in (("stock", stock), ("onednn", onednn)):
            t = time.perf_counter()
            fn(x, w, b, g)
            times[name].append(time.perf_counter() - t)
    best = {k: min(v) * 1e3 for k, v in times.items()}
    print(
        json.dumps(
            {
                "channels": channels,
                "grid_kji": grid,
                "stock_ms": round(best["stock"], 2),
                "onednn_ms": round(best["onednn"], 2),
                "speedup": round(best["stock"] / best["onednn"], 2),
                "max_rel_diff": diff,
            }
        ),
        flush=True,
    )
