"""ModelSpec (JSON from the TypeScript composer) → a torch registration model and its loss.

``build_model(spec, plugins=...)`` builds every node through its plugin's python factory (the entry
``{root, module, factory}`` of the *registered* plugin with the node's id: ``root`` goes on ``sys.path``,
``module.factory(options, inputs)`` returns an ``nn.Module``) and wires them:

    moving, fixed ─ encoder ─→ moving/fixed pyramids
    for each cascade step k:  tokens_k(pyramids) → block items → stageAdapters_k → stage maps_k
    decoder(moving, fixed, pyramids, stage maps) → fields (coarse → fine), warped images

Call conventions a plugin module follows, by the position of its node in the spec:

- encoder:        ``forward(moving, fixed) -> (moving_pyramid, fixed_pyramid)`` (lists, finest first)
- tokens:         ``forward(moving_pyramid, fixed_pyramid) -> tokens (N, L, C)``
- block items:    ``forward(tokens) -> tokens``
- stageAdapters:  ``forward(tokens) -> [maps]`` (coarse → fine)
- decoder:        ``forward(moving, fixed, moving_pyramid, fixed_pyramid, stage_maps) -> {'fields', 'warped', …}``;
                  a decoder with ``multi_step = True`` (the cascade) gets a list of per-step stage maps
- losses:         ``forward(outputs, batch) -> scalar``

Sharing. A node with ``sharesWith`` re-uses the module object (the same weights) of the node at that
path: LLaMA-Reg applies one LLM layer twice. The encoder and every ``LLMBackbone`` node are shared by
all cascade steps; each step has its own tokens (position embedding), non-LLM block adapters, stage
adapters and decoder (spec §1.4). In the state dict the LLM backbones live once, under ``llm.<name>``.

Step-wise training (``freeze_for_step``), after the released LLaMA-Reg code (spec §1.6, §1.12 item 7):

- ``'step-by-step'`` step 1: steps ≥ 2 are not run; everything trains except what the LLM node itself
  keeps frozen (its base weights; its LoRA adapters or ``trainable`` weights do train).
  step 2: encoder and LLM (LoRA included) frozen; step-1 adapters/decoder *and* step-2 modules train.
  step k ≥ 3: everything before step k frozen; only step-k modules train.
- ``'joint'`` (the paper's ablation): step 1 as above; step ≥ 2 runs all steps with the encoder and
  the LLM frozen and every step's tokens/adapters/decoder (all decoding branches) training together.

A group never unfreezes a parameter its node built frozen (a frozen LLM base stays frozen).

Where plugin code comes from. ``plugins`` maps plugin ids to python entries; the caller takes it from the
workspace's plugin registry (workspace.json + descriptors; the TypeScript side passes it), never from a
spec it read from disk. With ``plugins`` given, a node's own ``python`` entry is ignored and a node whose id
is not in the table is refused, so a spec.json in a run folder names plugins but never runs code from a
path it names. Without ``plugins`` (a spec built in memory by the caller, as tests do) the nodes' entries
are used as they are; building a run folder's model always passes the table (train.load_run_model).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .files import workspace_root_from_env
from .nn import count_parameters, torch_spatial

__all__ = ["SpecError", "PluginTable", "spec_plugins", "load_factory", "build_node", "RegistrationModel", "build_model", "LossFunction", "build_loss"]


class SpecError(ValueError):
    """A ModelSpec the Python side cannot build (missing section, bad sharing, plugin not importable)."""

    kind = "shape"

    def __init__(self, message: str, kind: str | None = None, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        if kind:
            self.kind = kind
        self.where = where
        self.hint = hint


PluginTable = dict  # plugin id -> {"root", "module", "factory"}

# The cascade schedules, as the experiment schema spells them (packages/core/src/config.ts,
# train.cascade.schedule); a test keeps the two lists equal.
CASCADE_SCHEDULES = ("step-by-step", "joint")
# Spellings this module used before it followed the schema; still read so that older callers keep working.
_SCHEDULE_ALIASES = {"stepwise": "step-by-step", "step": "step-by-step"}


def cascade_schedule(schedule: str) -> str:
    """The schema's spelling of a cascade schedule; an unknown one is a config error naming the schema's values."""
    name = _SCHEDULE_ALIASES.get(schedule, schedule)
    if name not in CASCADE_SCHEDULES:
        raise SpecError(f"unknown cascade schedule {schedule!r}; use {' or '.join(repr(s) for s in CASCADE_SCHEDULES)}", kind="config", where="train.cascade.schedule")
    return name


_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def spec_plugins(spec: dict) -> PluginTable:
    """The plugin table of a spec the caller composed itself (in memory, trusted): id -> python entry."""
    nodes = [spec.get("encoder"), spec.get("tokens"), *(spec.get("block") or []), spec.get("stageAdapters"), spec.get("decoder"), *(spec.get("losses") or [])]
    return {n["id"]: n["python"] for n in nodes if isinstance(n, dict) and n.get("python")}


def python_entry(node: dict, plugins: PluginTable | None) -> dict:
    """The python entry to build ``node`` with: the registered plugin's (``plugins``), else the node's own."""
    if plugins is None:
        return node.get("python") or {}
    pid = node.get("id")
    entry = plugins.get(pid) if isinstance(pid, str) else None
    if entry is None:
        known = ", ".join(sorted(plugins)) or "(none)"
        raise SpecError(
            f"{node.get('path', 'a node')} names plugin {pid!r}, which is not registered in this workspace; registered plugins with python code: {known}",
            kind="plugin",
            hint='a third-party plugin must be listed under "plugins" in workspace.json',
        )
    return entry


def _workspace_root(spec: dict, workspace_root: str | os.PathLike | None) -> Path:
    root = workspace_root or spec.get("workspaceRoot") or workspace_root_from_env() or os.getcwd()
    return Path(root)


def load_factory(python: dict, workspace_root: str | os.PathLike | None = None) -> Callable:
    """Import ``python.module`` from ``python.root`` (put on ``sys.path``) and return ``python.factory``."""
    if not python or not python.get("module"):
        raise SpecError(f"node has no python entry ({python!r})")
    if not isinstance(python["module"], str) or not _MODULE_NAME.match(python["module"]):
        raise SpecError(f"python module {python['module']!r} is not a dotted module name")
    root = Path(python.get("root") or ".")
    if not root.is_absolute():
        root = Path(workspace_root or os.getcwd()) / root
    if not root.is_dir():
        raise SpecError(f"python root {root} of module {python['module']} does not exist")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(python["module"])
    except ImportError as e:
        raise SpecError(f"cannot import plugin module {python['module']} from {root}: {e}") from e
    factory = getattr(module, python.get("factory") or "build", None)
    if not callable(factory):
        raise SpecError(f"plugin module {python['module']} ({root}) has no factory {python.get('factory') or 'build'}()")
    return factory


def build_node(node: dict, workspace_root: str | os.PathLike | None = None, plugins: PluginTable | None = None) -> nn.Module:
    """Build one spec node's module (its code from ``plugins`` by id, see the module doc). A relative LLM
    checkpoint path is resolved against the workspace root."""
    options = dict(node.get("options") or {})
    if node.get("kind") == "LLMBackbone" and isinstance(options.get("checkpoint"), str):
        ckpt = Path(os.path.expanduser(options["checkpoint"]))
        if not ckpt.is_absolute():
            options["checkpoint"] = str(Path(workspace_root or os.getcwd()) / ckpt)
    factory = load_factory(python_entry(node, plugins), workspace_root)
    module = factory(options, node.get("inputs") or {})
    if not isinstance(module, nn.Module):
        raise SpecError(f"{node.get('path')} ({node.get('id')}): factory returned {type(module).__name__}, not a torch.nn.Module")
    return module


def _key(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", text)


class RegistrationModel(nn.Module):
    """The assembled network. ``forward(moving, fixed) -> {'fields', 'warped', 'steps'}``.

    ``fields``: displacement fields coarse → fine (``[φ_1/4, φ_1/2, φ_1]`` for LLaMA-Reg), each
    ``(N, 3, K_s, J_s, I_s)`` in voxels of its own grid, channel c along NIfTI axis c; ``warped``: the
    full-resolution moving image sampled by each; ``steps``: how many cascade steps ran.
    """

    def __init__(self, spec: dict, workspace_root: str | os.PathLike | None = None, plugins: PluginTable | None = None):
        super().__init__()
        for section in ("input", "encoder", "tokens", "block", "stageAdapters", "decoder"):
            if section not in spec:
                raise SpecError(f"ModelSpec has no '{section}' section")
        self.spec = spec
        root = _workspace_root(spec, workspace_root)
        self.input_kji = torch_spatial(spec["input"]["spatial"])
        self.input_channels = int(spec["input"].get("channels", 1))

        self.encoder = build_node(spec["encoder"], root, plugins)
        self.decoder = build_node(spec["decoder"], root, plugins)
        self.multi_step = bool(getattr(self.decoder, "multi_step", False))
        self.n_steps = int(getattr(self.decoder, "steps", 1)) if self.multi_step else 1
        self.active_steps = self.n_steps

        # Block plan: for every block item, where its module lives — ('llm', key), shared by all steps,
        # or ('branch', key), one per step. sharesWith points at an earlier item's entry.
        self.llm = nn.ModuleDict()
        self._plan: list[tuple[str, str]] = []
        self._plan_paths: list[str] = []
        by_path: dict[str, tuple[str, str]] = {}
        branch_nodes: dict[str, dict] = {}
        for i, node in enumerate(spec["block"]):
            path = node.get("path", f"model.block[{i}]")
            if node.get("sharesWith"):
                target = node["sharesWith"]
                if target not in by_path:
                    raise SpecError(f"{path} shares '{target}', which is not an earlier block item (known: {', '.join(by_path) or 'none'})")
                entry = by_path[target]
            elif node.get("kind") == "LLMBackbone":
                key = _key(node.get("name") or f"block{i}")
                if key in self.llm:
                    key = f"{key}_{i}"
                self.llm[key] = build_node(node, root, plugins)
                entry = ("llm", key)
            else:
                key = f"block{i}"
                branch_nodes[key] = node
                entry = ("branch", key)
            by_path[path] = entry
            self._plan.append(entry)
            self._plan_paths.append(path)

        self.branches = nn.ModuleList()
        for _ in range(self.n_steps):
            branch = nn.ModuleDict()
            branch["tokens"] = build_node(spec["tokens"], root, plugins)
            branch["block"] = nn.ModuleDict({key: build_node(node, root, plugins) for key, node in branch_nodes.items()})
            branch["stages"] = build_node(spec["stageAdapters"], root, plugins)
            self.branches.append(branch)

        # what each parameter was built as: freezing policies never unfreeze a parameter built frozen
        self._built_trainable = {name: p.requires_grad for name, p in self.named_parameters()}

    # ------------------------------------------------------------------ forward

    def _stage_maps(self, step: int, moving_pyramid, fixed_pyramid) -> list[torch.Tensor]:
        branch = self.branches[step]
        tokens = branch["tokens"](moving_pyramid, fixed_pyramid)
        for where, key in self._plan:
            module = self.llm[key] if where == "llm" else branch["block"][key]
            tokens = module(tokens)
        return branch["stages"](tokens)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> dict[str, Any]:
        expected = (self.input_channels, *self.input_kji)
        for name, t in (("moving", moving), ("fixed", fixed)):
            if t.dim() != 5 or tuple(t.shape[1:]) != expected:
                raise ValueError(
                    f"{name} must be (N, {expected[0]}, {expected[1]}, {expected[2]}, {expected[3]}) — the spec's input {self.spec['input']['spatial']} (i, j, k) reversed — got {tuple(t.shape)}"
                )
        moving_pyramid, fixed_pyramid = self.encoder(moving, fixed)
        maps = [self._stage_maps(k, moving_pyramid, fixed_pyramid) for k in range(self.active_steps)]
        if self.multi_step:
            out = self.decoder(moving, fixed, moving_pyramid, fixed_pyramid, maps)
        else:
            out = self.decoder(moving, fixed, moving_pyramid, fixed_pyramid, maps[0])
        return {"fields": list(out["fields"]), "warped": list(out["warped"]), "steps": self.active_steps}

    @torch.no_grad()
    def forward_field(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """The final full-resolution displacement field ``(N, 3, K, J, I)`` (what gets exported)."""
        return self.forward(moving, fixed)["fields"][-1]

    # ------------------------------------------------------------------ groups and freezing

    def group_modules(self, group: str) -> list[nn.Module]:
        """Modules of a group: ``'encoder'``, ``'llm'`` or ``'step<k>'`` (k = 1 … n_steps)."""
        if group == "encoder":
            return [self.encoder]
        if group == "llm":
            return list(self.llm.values())
        m = re.fullmatch(r"step(\d+)", group)
        if m and 1 <= int(m.group(1)) <= self.n_steps:
            k = int(m.group(1)) - 1
            dec = self.decoder.decoders[k] if self.multi_step else self.decoder
            return [self.branches[k], dec]
        raise KeyError(f"unknown parameter group {group!r}; groups: {', '.join(self.groups())}")

    def groups(self) -> list[str]:
        return ["encoder", "llm"] + [f"step{k}" for k in range(1, self.n_steps + 1)]

    def trainable_groups(self, step: int, schedule: str = "step-by-step") -> list[str]:
        """Groups that train at cascade ``step`` under ``schedule`` (module docstring)."""
        if not 1 <= step <= self.n_steps:
            raise ValueError(f"step {step} is out of range: this model has {self.n_steps} step(s)")
        schedule = cascade_schedule(schedule)
        if schedule == "step-by-step":
            if step == 1:
                return ["encoder", "llm", "step1"]
            if step == 2:
                return ["step1", "step2"]
            return [f"step{step}"]
        if schedule == "joint":
            if step == 1:
                return ["encoder", "llm", "step1"]
            return [f"step{k}" for k in range(1, self.n_steps + 1)]
        raise AssertionError(schedule)  # cascade_schedule admits only CASCADE_SCHEDULES

    def steps_run(self, step: int, schedule: str = "step-by-step") -> int:
        return self.n_steps if (cascade_schedule(schedule) == "joint" and step > 1) else step

    def freeze_for_step(self, step: int, schedule: str = "step-by-step") -> list[str]:
        """Set ``requires_grad`` and the number of steps run for training ``step``; returns the trainable groups."""
        groups = self.trainable_groups(step, schedule)
        train_ids = {id(p) for g in groups for m in self.group_modules(g) for p in m.parameters()}
        for name, p in self.named_parameters():
            p.requires_grad_(self._built_trainable.get(name, True) and id(p) in train_ids)
        self.active_steps = self.steps_run(step, schedule)
        return groups

    # ------------------------------------------------------------------ description

    def describe(self) -> dict:
        """Parameter counts per node: ``{'nodes': [{path, id, step, total, trainable, frozen, sharesWith?}], 'total', 'trainable', 'frozen'}``.

        A shared module is counted at the node that owns it; nodes that re-use it show 0 and ``sharesWith``.
        """
        spec = self.spec
        rows: list[dict] = []

        def row(node: dict, module: nn.Module | None, step: int | None, **extra):
            counts = count_parameters(module) if module is not None else {"total": 0, "trainable": 0, "frozen": 0}
            rows.append({"path": node.get("path"), "id": node.get("id"), "step": step, **counts, **extra})

        row(spec["encoder"], self.encoder, None)
        seen_llm: set[str] = set()
        for k in range(self.n_steps):
            step = k + 1
            row(spec["tokens"], self.branches[k]["tokens"], step)
            for (where, key), _path, node in zip(self._plan, self._plan_paths, spec["block"]):
                if node.get("sharesWith"):
                    row(node, None, step, sharesWith=node["sharesWith"])
                elif where == "llm":
                    if key in seen_llm:
                        row(node, None, step, sharedAcrossSteps=True)
                    else:
                        seen_llm.add(key)
                        row(node, self.llm[key], None)
                else:
                    row(node, self.branches[k]["block"][key], step)
            row(spec["stageAdapters"], self.branches[k]["stages"], step)
            dec = self.decoder.decoders[k] if self.multi_step else self.decoder
            row(spec["decoder"], dec, step)
        return {"nodes": rows, **count_parameters(self)}


def build_model(spec: dict, workspace_root: str | os.PathLike | None = None, plugins: PluginTable | None = None) -> RegistrationModel:
    """Build the :class:`RegistrationModel` of a ModelSpec dict (``json.load`` of the composer's output).

    Relative plugin roots and LLM checkpoint paths are resolved against ``workspace_root``, else
    ``spec['workspaceRoot']``, else ``$LLMED_WORKSPACE``, else the current directory.
    """
    return RegistrationModel(spec, workspace_root, plugins)


class LossFunction(nn.Module):
    """``loss(outputs, batch) -> (total, {term: float})``; total = Σ weight_i · term_i.

    The dict holds each term's *unweighted* value under the loss id (``mse``, ``diffusion`` …; a
    repeated id gets ``id[i]``) and ``total``. ``batch['fixed_pyramid']`` (the fixed image at each field's
    grid) is computed once here when absent.
    """

    def __init__(self, terms: list[tuple[str, float, nn.Module]]):
        super().__init__()
        self.names = [n for n, _, _ in terms]
        self.weights = [w for _, w, _ in terms]
        self.terms = nn.ModuleList([m for _, _, m in terms])

    def forward(self, outputs: dict, batch: dict):
        from .losses import prepare_batch

        batch = prepare_batch(outputs, batch)
        total = outputs["fields"][-1].new_zeros(())
        values: dict[str, float] = {}
        for name, weight, term in zip(self.names, self.weights, self.terms):
            v = term(outputs, batch)
            values[name] = float(v.detach())
            total = total + weight * v
        values["total"] = float(total.detach())
        return total, values


def build_loss(spec: dict, workspace_root: str | os.PathLike | None = None, plugins: PluginTable | None = None) -> LossFunction:
    """The weighted sum of the spec's ``losses`` (each built by its plugin factory)."""
    root = _workspace_root(spec, workspace_root)
    nodes = spec.get("losses") or []
    if not nodes:
        raise SpecError("ModelSpec has no losses")
    ids = [n.get("id") for n in nodes]
    terms = []
    for i, node in enumerate(nodes):
        name = node["id"] if ids.count(node["id"]) == 1 else f"{node['id']}[{i}]"
        terms.append((name, float(node.get("weight", 1.0)), build_node(node, root, plugins)))
    return LossFunction(terms)
