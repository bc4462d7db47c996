"""Registry walk: every plugin with a python package builds from its TypeScript descriptor's `example` and
runs forward + backward on random inputs of the example shapes (a Metric: its reference runs on the
example's values, label maps and fields or, for a text Metric, texts, and gives a finite number).

The examples come from the live CLI listing, the descriptors loaded with tsx, or the snapshot
``tests/plugin_examples.json`` (see ``plugin_registry``). Regenerate the snapshot with
``python tests/test_model_plugins.py --write-examples``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from plugin_registry import PLUGINS, REPO, SNAPSHOT, examples_via_tsx, load_examples, reference_missing


def python_packages() -> dict[str, Path]:
    """plugin folder → its python package, for every plugin that has one."""
    return {init.parents[2].name: init.parent for init in sorted(PLUGINS.glob("*/python/*/__init__.py"))}


SOURCE, EXAMPLES = load_examples()
WITH_PYTHON = [e for e in EXAMPLES if e.get("python")]


def test_every_python_plugin_has_an_example():
    ids = {e["id"] for e in WITH_PYTHON}
    missing = sorted(set(python_packages()) - ids)
    assert not missing, f"plugins with a python package but no example from the {SOURCE}: {missing}" + ("; regenerate tests/plugin_examples.json" if SOURCE == "snapshot" else "")


def test_snapshot_lists_the_same_plugins_as_the_live_descriptors():
    if SOURCE == "snapshot":
        pytest.skip("no Node here: the snapshot is the only source")
    snapshot = json.loads(SNAPSHOT.read_text())
    snap = {e["id"]: e["python"]["module"] for e in snapshot if e.get("python")}
    live = {e["id"]: e["python"]["module"] for e in WITH_PYTHON}
    assert snap == live, "tests/plugin_examples.json is stale: python tests/test_model_plugins.py --write-examples"
    # The option schemas too: without Node, tests fill options from the snapshot's schemas.
    # and which Metrics are text Metrics (their examples are texts, not label maps)
    assert {e["id"] for e in snapshot if e.get("text")} == {e["id"] for e in EXAMPLES if e.get("text")}, (
        "tests/plugin_examples.json's text Metrics are stale: python tests/test_model_plugins.py --write-examples"
    )
    snap_schemas = {e["id"]: e.get("optionsSchema") for e in snapshot}
    live_schemas = {e["id"]: e.get("optionsSchema") for e in EXAMPLES}
    assert snap_schemas == live_schemas, "tests/plugin_examples.json's option schemas are stale: python tests/test_model_plugins.py --write-examples"


def _vol(c, spatial_ijk):
    i, j, k = spatial_ijk
    return torch.rand(1, c, k, j, i)


def _pyramids(shape):
    levels = shape["levels"]
    return [_vol(l["channels"], l["spatial"]) for l in levels], [_vol(l["channels"], l["spatial"]) for l in levels]


def _tensors(x):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _tensors(v)
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _tensors(v)


def _fake_outputs_and_batch(spatial_kji=(8, 8, 8), labels=3):
    fields, warped = [], []
    for s in (4, 2, 1):
        size = tuple(n // s for n in spatial_kji)
        fields.append((torch.randn(1, 3, *size) * 0.5).requires_grad_())
        warped.append(torch.rand(1, 1, *size, requires_grad=True))
    seg = lambda: torch.nn.functional.one_hot(torch.randint(0, labels, (1, *spatial_kji)), labels).permute(0, 4, 1, 2, 3).float()  # noqa: E731
    batch = {"moving": torch.rand(1, 1, *spatial_kji), "fixed": torch.rand(1, 1, *spatial_kji), "moving_labels": seg(), "fixed_labels": seg()}
    return {"fields": fields, "warped": warped, "steps": 1}, batch


def _check_declared_output(out, shape: dict) -> None:
    """The module's output matches the shape the descriptor's TypeScript shape rule declared."""
    kji = lambda sp: tuple(reversed(sp))  # noqa: E731
    t = shape["type"]
    if t == "tokens":
        assert tuple(out.shape) == (1, shape["length"], shape["width"])
    elif t == "stages":
        assert [tuple(m.shape) for m in out] == [(1, s["channels"], *kji(s["spatial"])) for s in shape["stages"]]
    elif t == "pyramid":
        for stream in out:
            assert [tuple(m.shape) for m in stream] == [(1, l["channels"], *kji(l["spatial"])) for l in shape["levels"]]
    elif t == "fields":
        assert [tuple(f.shape) for f in out["fields"]] == [(1, 3, *kji(f["spatial"])) for f in shape["fields"]]
        assert out.get("steps", 1) == shape.get("steps", 1)


def _load(example):
    from llmed.assemble import load_factory

    py = dict(example["python"])
    root = Path(py["root"])
    if not root.is_absolute():
        root = REPO / root
    if not root.is_dir():  # a CLI listing from another checkout location
        root = PLUGINS / example["id"] / "python"
    py["root"] = str(root)
    return load_factory(py)


@pytest.mark.parametrize("example", WITH_PYTHON, ids=[e["id"] for e in WITH_PYTHON])
def test_plugin_example_builds_and_runs(example, tiny_checkpoint):
    torch.manual_seed(0)
    options = dict(example["options"])
    inputs = example.get("inputs") or {}
    kind = example["kind"]
    if kind == "LLMBackbone" and "checkpoint" in options:
        # the example names test/fixtures/tiny-<id>; build that tiny checkpoint in a tmp dir instead
        from fixtures import UnknownFamily

        try:
            options["checkpoint"] = str(tiny_checkpoint(example["id"], hidden=int(options.get("hiddenSize", 64)), layers=int(options.get("numLayers", 2))))
        except UnknownFamily as e:
            pytest.skip(f"third-party LLM family {example['id']!r}: {e}")
    if kind == "Metric":
        reference = _load(example)
        if example.get("text"):
            # A text Metric's example inputs are texts (candidates, references, VQA choices; GREEN: a judge's
            # answers), given to its reference as they are; one needing a local resource may be skipped.
            assert inputs and all(isinstance(v, list) for v in inputs.values()), f"{example['id']}: a text Metric's example inputs are lists of texts, got {inputs!r}"
            why = reference_missing(sys.modules[reference.__module__], options)
            if why:
                pytest.skip(f"{example['id']}: {why}")
            out = reference(options, inputs)
        else:
            # a registration Metric's python entry is its numpy reference, run on the example's values
            # (label maps and fields in the plugin-cases encoding)
            from llmed.plugin_cases import case_value

            out = reference(options, {k: case_value(v) for k, v in inputs.items()})
        assert math.isfinite(out["value"]), out
        return
    module = _load(example)(options, inputs)
    assert isinstance(module, torch.nn.Module)

    if getattr(module, "report_loss", False):  # report-generation losses: next-token logits and labels
        out = module({"logits": torch.randn(2, 5, 11, requires_grad=True)}, {"labels": torch.tensor([[-100, -100, 3, 4, 2]] * 2)})
        assert out.dim() == 0
    elif getattr(module, "report_encoder", False):  # report-generation encoders: one volume -> visual tokens
        img = inputs["image"]
        out = module(torch.rand(1, img["channels"], *reversed(img["spatial"])))
        assert out.dim() == 3 and out.shape[0] == 1
    elif kind == "Loss":
        outputs, batch = _fake_outputs_and_batch()
        out = module(outputs, batch)
        assert out.dim() == 0
    elif kind == "Encoder":
        img = inputs["image"]
        out = module(_vol(img["channels"], img["spatial"]), _vol(img["channels"], img["spatial"]))
        mp, fp = out
        assert len(mp) == len(fp) == len(options["channels"])
        for lvl, (t, c) in enumerate(zip(mp, options["channels"])):
            assert t.shape == (1, c, *(n // 2**lvl for n in reversed(img["spatial"])))
    elif kind == "Decoder":
        img = inputs["image"]
        moving, fixed = _vol(img["channels"], img["spatial"]), _vol(img["channels"], img["spatial"])
        mp, fp = _pyramids(inputs["pyramid"])
        maps = lambda: [_vol(s["channels"], s["spatial"]) for s in inputs["stages"]["stages"]]  # noqa: E731
        if getattr(module, "multi_step", False):
            out = module(moving, fixed, mp, fp, [maps() for _ in range(module.steps)])
        else:
            out = module(moving, fixed, mp, fp, maps())
        assert out["fields"][-1].shape == (1, 3, *reversed(img["spatial"]))
        assert len(out["fields"]) == len(out["warped"]) == len(inputs["stages"]["stages"]) - 1
    elif "tokens" in inputs:  # block items, LLM backbones and stage adapters take tokens
        t = inputs["tokens"]
        out = module(torch.randn(1, t["length"], t["width"]))
        if isinstance(out, torch.Tensor) and not getattr(module, "changes_length", False):
            assert out.shape[:2] == (1, t["length"])
    elif "pyramid" in inputs:  # the tokens node takes both pyramids
        mp, fp = _pyramids(inputs["pyramid"])
        out = module(mp, fp)
        lvl = inputs["pyramid"]["levels"][options.get("level", -1)]
        assert out.shape == (1, lvl["spatial"][0] * lvl["spatial"][1] * lvl["spatial"][2], 2 * lvl["channels"])
    else:
        pytest.fail(f"no call convention known for {example['id']} ({kind}) with inputs {sorted(inputs)}")

    if example.get("output"):  # the CLI lists each example's output shape as the TypeScript shape rule computed it
        _check_declared_output(out, example["output"])
    total = sum(t.float().mean() for t in _tensors(out))
    assert torch.isfinite(total)
    trainable = [p for p in module.parameters() if p.requires_grad]
    if trainable:
        total.backward()
        assert any(p.grad is not None and torch.any(p.grad != 0) for p in trainable)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-examples"]:
        data = examples_via_tsx()
        if not data:
            sys.exit("could not load the descriptors with tsx (node_modules/.bin/tsx)")
        SNAPSHOT.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {len(data)} examples to {SNAPSHOT}")
    else:
        sys.exit("usage: python tests/test_model_plugins.py --write-examples")
