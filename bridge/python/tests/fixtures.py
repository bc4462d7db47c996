"""Tiny Hugging Face checkpoints for tests, written in the real on-disk format.

Each builder creates a randomly initialised transformers model of the family (config + model class),
then ``save_pretrained`` writes ``config.json`` and ``model.safetensors`` — or, with ``sharded``, a
``model.safetensors.index.json`` plus several ``model-0000k-of-0000n.safetensors`` shards — exactly as
a downloaded checkpoint looks. Used by the pytest suite and by the TypeScript tests:

    cd bridge/python && python -m tests.fixtures llama /tmp/tiny-llama [--sharded] [--hidden 64] [--layers 2]

prints a JSON line ``{"family", "dir", "files", "hidden_size", "num_layers"}``. ``family`` is a
transformers model type (``llama``, ``phi3``, ``qwen2``, ``mistral``, ...) or the id of an LLM family
plugin in plugins/, whose family.json names its model type (``llama2``, ``llama3`` → ``llama``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

try:  # pytest puts tests/ on sys.path; ``python -m tests.fixtures`` imports it as a package
    from plugin_registry import fill_options
except ImportError:  # pragma: no cover - the module form
    from tests.plugin_registry import fill_options


PLUGINS_DIR = Path(__file__).resolve().parents[3] / "plugins"

# train.augment as the experiment schema fills it when a config names none (packages/core/src/config.ts)
NO_AUGMENT = {"swap": 0.0, "warpFixed": {"probability": 0.0, "maxDisplacement": 2.0, "spacing": 8.0}}


def model_type_of(family: str) -> str:
    """The transformers model type of ``family``: a family plugin's first ``modelTypes`` entry, else ``family`` itself."""
    described = PLUGINS_DIR / family / "family.json"
    if described.is_file():
        return str(json.loads(described.read_text())["modelTypes"][0])
    return family


def tiny_config(family: str, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2, intermediate: int | None = None, vocab: int = 96):
    """A transformers config of ``family`` with tiny sizes (GQA on: ``kv_heads < heads``): a family plugin's
    id (its family.json names the classes) or a transformers model type (a third-party family), built by
    ``llmed.testing.tiny_config`` — the tests keep no table of families of their own."""
    from llmed.llm import Family, LLMOptionsError
    from llmed.testing import tiny_config as family_tiny_config

    described = PLUGINS_DIR / family / "family.json"
    try:
        fam = Family.from_json(described) if described.is_file() else Family.from_model_type(family, family)
    except LLMOptionsError:
        raise UnknownFamily(f"unknown family {family!r}; use a family plugin's id (llama2, llama3, phi3, qwen2) or a transformers model type") from None
    return family_tiny_config(fam, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, intermediate=intermediate, vocab=vocab)


class UnknownFamily(ValueError):
    """No tiny checkpoint can be made for this LLM family here (a third-party family whose id is not a
    transformers model type): the plugin walk skips it rather than failing llmed's own tests."""


def model_class(family: str):
    family = model_type_of(family)
    import transformers

    known = {"llama": transformers.LlamaForCausalLM, "phi3": transformers.Phi3ForCausalLM, "qwen2": transformers.Qwen2ForCausalLM}
    return known.get(family) or transformers.AutoModelForCausalLM


def build_tiny_checkpoint(family: str, out_dir: str | Path, sharded: bool = False, seed: int = 0, shard_size: int | str = "60KB", **sizes) -> dict:
    """Write a tiny checkpoint of ``family`` to ``out_dir``; returns a summary dict.

    ``sharded`` saves with a small ``max_shard_size`` so that (at the default sizes) every decoder layer
    lands in a shard of its own and the embeddings / LM head in others.
    """
    import torch

    torch.manual_seed(seed)
    config = tiny_config(family, **sizes)
    cls = model_class(family)
    model = cls.from_config(config) if cls is __import__("transformers").AutoModelForCausalLM else cls(config)
    # Non-trivial norm weights, so a loader that skips them (leaves ones) is caught by the tests.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if sharded:
        # A decoder layer of the default tiny size is ~150 kB in fp32: 60 kB shards split every layer over
        # a few shards of its own, which is what a reader that opens only the needed shards is tested on.
        model.save_pretrained(out, max_shard_size=shard_size)
    else:
        model.save_pretrained(out)
    return {"family": model_type_of(family), "dir": str(out), "files": sorted(p.name for p in out.iterdir()), "hidden_size": config.hidden_size, "num_layers": config.num_hidden_layers}


# --------------------------------------------------------------------------------------------------
# Tiny ModelSpecs, shaped like the TypeScript composer's output (docs/example-model-spec.json)
# --------------------------------------------------------------------------------------------------


def registered_plugins(plugins_dir) -> dict:
    """The first-party plugins' python entries by id, as the registry gives them (plugins/<id>/python/llmed_<id>):
    the table a run folder's model is built from (its spec.json's own paths are never imported)."""
    table = {}
    for folder in sorted(Path(plugins_dir).iterdir()):
        module = "llmed_" + folder.name.replace("-", "_")
        if (folder / "python" / module).is_dir():
            table[folder.name] = {"root": str(folder / "python"), "module": module, "factory": "build"}
    return table


def _node(plugins_dir, path: str, pid: str, kind: str, options: dict, inputs: dict, output: dict | None = None, **extra) -> dict:
    module = "llmed_" + pid.replace("-", "_")
    # The composer hands every factory its options filled from the descriptor's schema; so do these specs.
    node = {
        "path": path,
        "id": pid,
        "kind": kind,
        "options": fill_options(pid, options),
        "python": {"root": str(Path(plugins_dir) / pid / "python"), "module": module, "factory": "build"},
        "inputs": inputs,
    }
    if output is not None:
        node["output"] = output
    node.update({k: v for k, v in extra.items() if v is not None})
    return node


def make_spec(
    plugins_dir,
    checkpoint=None,
    *,
    family: str = "llama3",
    hidden: int = 64,
    spatial=(32, 32, 32),
    channels=(4, 8, 8, 16, 16),
    style: str = "llama-reg",
    llm_layers=(1,),
    decoder: str = "multiscale",
    steps: int = 1,
    base: int = 32,
    flow_hidden: int = 4,
    position_embedding: bool = True,
    attention: str = "bidirectional",
    rope: bool = False,
    final_norm: str = "ones",
    lora: dict | None = None,
    init: str = "pretrained",
    losses=(("mse", 1.0, {}), ("diffusion", 0.04, {})),
) -> dict:
    """A ModelSpec dict for tests. ``style``:

    - ``'llama-reg'``: adapter0 (linear) → LLM (name ``llm``) → inner-mlp → the same LLM again (sharesWith)
    - ``'llm-morph'``: adapter0 (InstanceNorm + LeakyReLU) → LLM layer a → adapter0 → LLM layer b (LoRA if given)
    - ``'vit'``: adapter0 → vit (no checkpoint)
    """
    image = {"type": "volume", "channels": 1, "spatial": list(spatial)}
    levels = [{"scale": 2**l, "channels": c, "spatial": [n // 2**l for n in spatial]} for l, c in enumerate(channels)]
    pyramid = {"type": "pyramid", "levels": levels}
    grid = levels[-1]["spatial"]
    length = grid[0] * grid[1] * grid[2]
    tok = lambda w: {"type": "tokens", "length": length, "width": w, "grid": list(grid)}  # noqa: E731
    ins = lambda w: {"image": image, "pyramid": pyramid, "tokens": tok(w)}  # noqa: E731

    encoder = _node(plugins_dir, "model.encoder", "dual-pyramid", "Encoder", {"channels": list(channels), "shared": False, "negativeSlope": 0.2}, {"image": image}, pyramid)
    width0 = 2 * channels[-1]
    tokens = _node(plugins_dir, "model.tokens", "tokens", "Adapter", {"grid": list(grid), "positionEmbedding": position_embedding, "level": -1}, {"image": image, "pyramid": pyramid}, tok(width0))
    llm_opts = lambda layers: {  # noqa: E731
        "checkpoint": str(checkpoint),
        "layers": list(layers),
        "hiddenSize": hidden,
        "numLayers": 2,
        "finalNorm": final_norm,
        "init": init,
        "trainable": False,
        "attention": attention,
        "rope": rope,
        "lora": lora,
    }
    block: list[dict] = []
    if style == "llama-reg":
        block.append(
            _node(plugins_dir, "model.block[0]", "adapter0", "Adapter", {"out": hidden, "hidden": 2 * width0, "norm": "none", "activation": "none", "negativeSlope": 0.2}, ins(width0), tok(hidden))
        )
        block.append(_node(plugins_dir, "model.block[1]", family, "LLMBackbone", llm_opts(llm_layers), ins(hidden), tok(hidden), name="llm"))
        block.append(_node(plugins_dir, "model.block[2]", "inner-mlp", "Adapter", {"hidden": 16, "activation": "none", "out": hidden}, ins(hidden), tok(hidden)))
        block.append(_node(plugins_dir, "model.block[3]", family, "LLMBackbone", llm_opts(llm_layers), ins(hidden), tok(hidden), sharesWith="model.block[1]"))
    elif style == "llm-morph":
        a, b = llm_layers[0], llm_layers[1] if len(llm_layers) > 1 else llm_layers[0]
        adapter = {"out": hidden, "norm": "instance", "activation": "leaky-relu", "negativeSlope": 0.2}
        block.append(_node(plugins_dir, "model.block[0]", "adapter0", "Adapter", {**adapter, "hidden": 2 * width0}, ins(width0), tok(hidden)))
        block.append(_node(plugins_dir, "model.block[1]", family, "LLMBackbone", llm_opts([a]), ins(hidden), tok(hidden), name="leb1"))
        block.append(_node(plugins_dir, "model.block[2]", "adapter0", "Adapter", {**adapter, "hidden": 2 * hidden}, ins(hidden), tok(hidden)))
        block.append(_node(plugins_dir, "model.block[3]", family, "LLMBackbone", llm_opts([b]), ins(hidden), tok(hidden), name="leb2"))
    elif style == "vit":
        block.append(
            _node(plugins_dir, "model.block[0]", "adapter0", "Adapter", {"out": hidden, "hidden": 2 * width0, "norm": "none", "activation": "none", "negativeSlope": 0.2}, ins(width0), tok(hidden))
        )
        block.append(_node(plugins_dir, "model.block[1]", "vit", "LLMBackbone", {"width": hidden, "depth": 1, "heads": 4, "mlpRatio": 2}, ins(hidden), tok(hidden)))
    else:
        raise ValueError(f"unknown style {style!r}")

    n_stages = 4
    stage_levels = [{"scale": levels[-1]["scale"] // 2 ** (k + 1), "channels": base // 2 ** (k + 1), "spatial": [n * 2 ** (k + 1) for n in grid]} for k in range(n_stages)]
    stages_shape = {"type": "stages", "stages": stage_levels}
    stage = _node(plugins_dir, "model.stageAdapters", "stage", "Adapter", {"base": base, "stages": n_stages}, ins(hidden), stages_shape)
    dec_opts = {"rescaleUpsampledField": True, "flowHidden": flow_hidden, "negativeSlope": 0.2}
    if decoder == "cascade":
        dec_opts["steps"] = steps
    fields = {"type": "fields", "fields": [{"scale": s["scale"], "spatial": s["spatial"]} for s in stage_levels[1:]], "steps": steps if decoder == "cascade" else 1}
    dec = _node(plugins_dir, "model.decoder", decoder, "Decoder", dec_opts, {**ins(hidden), "stages": stages_shape}, fields)
    loss_nodes = [{**_node(plugins_dir, f"loss[{i}]", pid, "Loss", opts, {}), "weight": w} for i, (pid, w, opts) in enumerate(losses)]
    return {
        "version": 1,
        "experiment": "test",
        "configFile": "<tests>",
        "input": image,
        "encoder": encoder,
        "tokens": tokens,
        "block": block,
        "stageAdapters": stage,
        "decoder": dec,
        "losses": loss_nodes,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fixtures", description="write a tiny HF checkpoint for tests")
    ap.add_argument("family", help="a transformers model type or the id of a family plugin in plugins/")
    ap.add_argument("out_dir")
    ap.add_argument("--sharded", action="store_true")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    info = build_tiny_checkpoint(a.family, a.out_dir, sharded=a.sharded, seed=a.seed, hidden=a.hidden, layers=a.layers, heads=a.heads, kv_heads=a.kv_heads, intermediate=a.intermediate)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
