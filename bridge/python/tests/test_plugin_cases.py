"""Registry walk over the per-plugin cases: every registered plugin's ``plugins/<id>/tests/cases.json``.

For each plugin of the registry listing (``plugin_registry``: the live ``llmed plugins list --json``, or its
snapshot) whose folder has cases:

- modules (Encoder, Adapter, LLMBackbone, Decoder) are built from the case's options, filled from the
  descriptor's schema as the composer fills them, and the case's ``shapes`` (the node's shape inputs),
  then called on the case's ``inputs`` by the assembler's call convention for their kind; each output named
  in ``expected`` is compared (shape, and values where the case gives them);
- losses are called as ``loss(outputs, batch)``: ``outputs`` = ``{"fields", "warped"}`` of the inputs, the
  batch the rest; ``expected["loss"]`` is the number;
- Metric plugins run through their python module's ``reference(options, inputs) -> dict`` when they have
  one (the TypeScript walker runs every Metric through its runtime); a text Metric's inputs are texts,
  which pass through ``case_value`` unchanged. A reference whose ``missing(options)`` names an absent
  local resource (WordNet, a model folder) is skipped with that reason.

Torch is seeded with the case's ``seed`` (default 0) before a module is built, so values recorded from
a seeded build are reproducible on this pinned torch.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from llmed.assemble import load_factory
from llmed.plugin_cases import case_value, read_cases
from plugin_registry import PLUGINS, REPO, fill_options, load_examples, reference_missing

SOURCE, ENTRIES = load_examples()


def _plugin_dir(entry: dict) -> Path:
    src = entry.get("source")
    if src:
        p = Path(src)
        p = p if p.is_absolute() else REPO / p
        if p.is_dir():
            return p
    return PLUGINS / entry["id"]


def _python_entry(entry: dict, folder: Path) -> dict | None:
    py = entry.get("python")
    if py:
        root = Path(py["root"])
        root = root if root.is_absolute() else REPO / root
        if not root.is_dir():  # a listing from another checkout location
            root = folder / "python"
        return {**py, "root": str(root)}
    # A Metric without a training module may still ship a python reference implementation.
    packages = sorted(folder.glob("python/*/__init__.py"))
    if len(packages) == 1:
        return {"root": str(folder / "python"), "module": packages[0].parent.name, "factory": "build"}
    return None


def _collect():
    params = []
    for entry in ENTRIES:
        folder = _plugin_dir(entry)
        cases = read_cases(folder)
        if not cases:
            continue
        python = _python_entry(entry, folder)
        if python is None:
            continue
        for case in cases:
            params.append(pytest.param(entry, python, case, id=f"{entry['id']}: {case['name']}"))
    return params


CASES = _collect()


def _tensor(x):
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, list):
        return [_tensor(v) for v in x]
    return x


def _compare(name: str, actual, expected, tol: float) -> None:
    if isinstance(expected, list):
        assert isinstance(actual, (list, tuple)) and len(actual) == len(expected), (
            f"{name}: {len(actual) if isinstance(actual, (list, tuple)) else type(actual).__name__} items, expected {len(expected)}"
        )
        for k, (a, e) in enumerate(zip(actual, expected)):
            _compare(f"{name}[{k}]", a, e, tol)
        return
    if isinstance(actual, torch.Tensor):
        actual = actual.detach().double().numpy()
    if isinstance(expected, dict) and set(expected) == {"shape"}:
        assert list(np.shape(actual)) == list(expected["shape"]), f"{name}: shape {list(np.shape(actual))}, expected {expected['shape']}"
        return
    if isinstance(expected, dict) and not isinstance(actual, np.ndarray):  # a nested result (a Metric's dict)
        assert isinstance(actual, dict), f"{name}: {type(actual).__name__}, expected an object"
        for key, e in expected.items():
            assert key in actual, f"{name}: no {key!r} in {sorted(actual)}"
            _compare(f"{name}.{key}", actual[key], e, tol)
        return
    want = case_value(expected)
    if isinstance(want, np.ndarray):
        assert list(np.shape(actual)) == list(want.shape), f"{name}: shape {list(np.shape(actual))}, expected {list(want.shape)}"
        np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), want.astype(np.float64), rtol=0, atol=tol, err_msg=name)
    elif isinstance(want, (int, float)) and not isinstance(want, bool):
        got = float(np.asarray(actual, dtype=np.float64).reshape(()))
        if np.isnan(want):
            assert np.isnan(got), f"{name}: {got}, expected NaN"
        else:
            assert abs(got - want) <= tol, f"{name}: {got!r}, expected {want!r} ± {tol}"
    else:
        assert actual == want, f"{name}: {actual!r}, expected {want!r}"


def _run_module(kind: str, module, inputs: dict) -> dict:
    """Call ``module`` by the assembler's convention for its position (llmed.assemble's module docstring)."""
    # report generation (llmed.report): a loss of next-token logits and labels; an encoder of one volume
    if getattr(module, "report_loss", False):
        return {"loss": module({"logits": inputs["logits"]}, {"labels": inputs["labels"].long()})}
    if getattr(module, "report_encoder", False):
        return {"tokens": module(inputs["image"])}
    if kind == "Loss":
        outputs = {"fields": inputs["fields"], "warped": inputs.get("warped", [])}
        batch = {k: v for k, v in inputs.items() if k not in ("fields", "warped")}
        return {"loss": module(outputs, batch)}
    if kind == "Encoder":
        mp, fp = module(inputs["moving"], inputs["fixed"])
        return {"moving_pyramid": mp, "fixed_pyramid": fp}
    if kind == "Decoder":
        return module(inputs["moving"], inputs.get("fixed"), inputs.get("moving_pyramid"), inputs.get("fixed_pyramid"), inputs["stage_maps"])
    if "moving_pyramid" in inputs:  # the tokens node
        return {"output": module(inputs["moving_pyramid"], inputs["fixed_pyramid"])}
    if "tokens" in inputs:  # block items (their output is tokens again) and stage adapters
        out = module(inputs["tokens"])
        return {"output": out, "tokens": out} if kind in ("LLMBackbone", "Adapter") and torch.is_tensor(out) else {"output": out}
    raise AssertionError(f"no call convention for a {kind} with inputs {sorted(inputs)}")


_TINY_CHECKPOINTS: dict[str, Path] = {}


def _family_of(python: dict):
    """The ``FAMILY`` a plugin's python package describes (an LLM family plugin), else None."""
    if str(python["root"]) not in sys.path:
        sys.path.insert(0, str(python["root"]))
    return getattr(importlib.import_module(python["module"]), "FAMILY", None)


def _tiny_checkpoint(python: dict) -> Path:
    """A tiny checkpoint of the family a plugin's python package describes (its ``FAMILY``), once per run."""
    from llmed.testing import write_tiny_checkpoint

    key = python["module"]
    if key not in _TINY_CHECKPOINTS:
        family = _family_of(python)
        folder = Path(tempfile.mkdtemp(prefix=f"llmed-tiny-{family.id}-"))
        _TINY_CHECKPOINTS[key] = Path(write_tiny_checkpoint(family, folder, fill="sine", layers=2)["dir"])
    return _TINY_CHECKPOINTS[key]


def test_some_plugins_have_cases():
    assert CASES, "no plugins/<id>/tests/cases.json found for any registered plugin"


@pytest.mark.parametrize("entry,python,case", CASES)
def test_plugin_case(entry, python, case):
    options = fill_options(entry["id"], case["options"])
    inputs = {k: _tensor(case_value(v)) for k, v in case["inputs"].items()}
    tol = case["tolerance"]
    if entry["kind"] == "Metric":
        if str(python["root"]) not in sys.path:
            sys.path.insert(0, str(python["root"]))
        module = importlib.import_module(python["module"])
        if not hasattr(module, "reference"):
            pytest.skip(f"{entry['id']} has no python reference(); the TypeScript walker runs its cases")
        why = reference_missing(module, options)
        if why:
            pytest.skip(f"{entry['id']}: {why}")
        result = module.reference(options, {k: case_value(v) for k, v in case["inputs"].items()})
    else:
        if entry["kind"] == "LLMBackbone" and _family_of(python) is not None:
            # An LLM family's cases name the tiny checkpoint of its descriptor example (test/fixtures/tiny-<id>);
            # it is written here, by the family's own classes, with the weights of a formula (fill="sine").
            options = {**options, "checkpoint": str(_tiny_checkpoint(python))}
        torch.manual_seed(int(case.get("seed", 0)))
        module = load_factory(python)(options, case.get("shapes") or {})
        with torch.no_grad():
            result = _run_module(entry["kind"], module, inputs)
    for name, expected in case["expected"].items():
        assert name in result, f"{entry['id']} gives {sorted(result)}, no {name!r}"
        _compare(name, result[name], expected, tol)
