"""Hugging Face decoder layers as a token encoder, loaded from a local checkpoint folder.

``build_decoder_stack(family, options, inputs)`` returns a :class:`DecoderStack`: the chosen decoder
layers of a checkpoint of ``family``, built with transformers' own layer class for the family and loaded strictly from only those layers' tensors (the safetensors index tells which shard
holds ``model.layers.{i}.*``; other shards are never opened). The stack maps tokens ``(N, L, H)`` to
``(N, L, H)``:

    x ← layer_{i₁}(x), …, x ← layer_{iₙ}(x), then optionally RMSNorm(x)

How the layers are called is explicit, never left to transformers' defaults (TOOLCHAIN.md: with no
mask, the SDPA path is causal):

- ``attention: 'bidirectional'`` passes an all-zero additive mask ``(1, 1, L, L)`` — every token
  attends to every token, the papers' set-encoder use (spec §1.2, §2.4);
  ``'causal'`` passes the usual additive causal mask (``finfo.min`` above the diagonal), narrowed to
  the family's sliding window on the layers that have one (Mistral, Qwen2 with ``use_sliding_window``).
- ``rope: False`` passes the identity rotation (cos = 1, sin = 0; LLaMA-Reg applies none);
  ``True`` the family's rotary embedding at positions ``0 … L−1`` along the token raster.
- ``finalNorm``: ``'none'``; ``'ones'`` an RMSNorm whose weight stays 1 (LLaMA-Reg's never-loaded
  norm, spec §1.12 item 6); ``'checkpoint'`` the model's final norm (``model.norm.weight``).

Weights are frozen (``requires_grad=False``) unless ``trainable``; ``init: 'random'`` keeps the
architecture with fresh weights (normal(0, initializer_range), like a from-scratch HF model) and reads
no tensors; ``lora`` injects peft LoRA adapters into the named projections (Phi-3's fused
``qkv_proj``) and only they train. ``merge_lora`` folds them back for ONNX export.

Families are not listed here. Each LLM family plugin describes its own in ``plugins/<id>/family.json``
(transformers module and class names, accepted ``model_type`` values, Hugging Face repo, LoRA targets,
option defaults), which its TypeScript descriptor and its Python package both read; the package builds
with ``build_decoder_stack(Family.from_json(...), options, inputs)``. This module keeps what every family
shares: reading a checkpoint's config and only the chosen layers' tensors, the call semantics, LoRA.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import safe_open

from .checkpoint import CheckpointError
from .files import workspace_root_from_env

__all__ = [
    "CheckpointError",
    "LLMOptionsError",
    "FamilyError",
    "Family",
    "CLASS_ROLES",
    "DecoderStack",
    "build_decoder_stack",
    "resolve_checkpoint_dir",
    "read_layer_tensors",
    "merge_lora",
]


# A checkpoint folder, file or tensor set that cannot serve the requested layers raises llmed.checkpoint's
# CheckpointError (re-exported here), its second argument the file or folder at fault (``where``).


class LLMOptionsError(CheckpointError, ValueError):
    """Options of an LLM backbone node that do not fit the checkpoint (layer index out of range, hidden
    size mismatch, unknown LoRA target) or each other. A :class:`CheckpointError`, so one ``except``
    catches every backbone loading failure; ``kind`` is ``'config'`` because the fix is in the config.
    So ``where`` stays unset (TypeScript names the experiment's config file); the checkpoint folder the
    options disagree with is named in the message and kept as ``path``."""

    kind = "config"

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None):
        super().__init__(message)
        self._path = str(path) if path is not None else None

    @property
    def path(self) -> str | None:
        return self._path


class FamilyError(ValueError):
    """A family description (a plugin's ``family.json``) that cannot be read or names classes transformers
    does not have. llmed error kind ``'plugin'``: the fix is in the plugin folder, named by ``where``."""

    kind = "plugin"

    def __init__(self, message: str, where: str | os.PathLike[str] | None = None, hint: str | None = None):
        super().__init__(message)
        self.where = str(where) if where is not None else None
        self.hint = hint


# The roles a family names a transformers class for, as ``family.json`` spells them (its "transformers"
# object). The first four build the decoder stack; ``model`` and ``causalLM`` are named so that the same
# family object can later build the whole language model (embeddings, final norm, LM head).
CLASS_ROLES = ("config", "decoderLayer", "rotaryEmbedding", "rmsNorm", "model", "causalLM")
_REQUIRED_ROLES = CLASS_ROLES[:4]


@dataclass(frozen=True)
class Family:
    """One transformers architecture family: which checkpoints it accepts and where its classes live.

    An LLM family plugin describes itself in its own folder (``plugins/<id>/family.json``, read by its
    TypeScript descriptor too) and its Python package passes ``Family.from_json(...)`` to
    :func:`build_decoder_stack`; llmed keeps no table of families.
    """

    id: str
    title: str
    model_types: tuple[str, ...]
    hf_repo: str  # the Hugging Face repo to get weights from (for error messages)
    module: str  # the transformers modeling module that holds the classes
    classes_by_role: tuple[tuple[str, str], ...]  # (role, class name), roles from CLASS_ROLES
    lora_targets: tuple[str, ...] = ()
    source: str | None = None  # the family.json it was read from

    @classmethod
    def from_dict(cls, data: dict, source: str | os.PathLike[str] | None = None) -> Family:
        """A family from the parsed ``family.json`` object (the keys the TypeScript descriptor reads too)."""
        where = str(source) if source is not None else None

        def need(obj: Any, key: str, typ: type, what: str):
            value = obj.get(key) if isinstance(obj, dict) else None
            if not isinstance(value, typ) or (typ in (str, list) and not value):
                raise FamilyError(f"family description {where or '(in memory)'} needs {what}", where)
            return value

        tf = need(data, "transformers", dict, '"transformers": {"module", "config", "decoderLayer", "rotaryEmbedding", "rmsNorm"}')
        roles = []
        for role in CLASS_ROLES:
            if role in _REQUIRED_ROLES:
                roles.append((role, need(tf, role, str, f'"transformers.{role}" (a class name in {tf.get("module")})')))
            elif isinstance(tf.get(role), str):
                roles.append((role, tf[role]))
        model_types = need(data, "modelTypes", list, '"modelTypes": the config.json model_type values it accepts')
        return cls(
            id=need(data, "id", str, '"id"'),
            title=need(data, "title", str, '"title"'),
            model_types=tuple(str(t) for t in model_types),
            hf_repo=str(data.get("huggingFaceRepo") or f"(the Hugging Face repo of a {data.get('title')} model)"),
            module=need(tf, "module", str, '"transformers.module" (e.g. transformers.models.llama.modeling_llama)'),
            classes_by_role=tuple(roles),
            lora_targets=tuple(str(t) for t in data.get("loraTargets") or ()),
            source=where,
        )

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Family:
        """Read a plugin's ``family.json``; a missing or malformed file is a :class:`FamilyError` naming it."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FamilyError(f"family description {path} does not exist", path, hint="an LLM family plugin keeps its family.json next to package.json") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FamilyError(f"family description {path} is not valid JSON: {e}", path) from None
        if not isinstance(data, dict):
            raise FamilyError(f"family description {path} must hold a JSON object", path)
        return cls.from_dict(data, path)

    @classmethod
    def from_model_type(cls, family_id: str, model_type: str) -> Family:
        """A family for a transformers decoder whose classes have the usual names (``<Name>Config``,
        ``<Name>DecoderLayer``, ``<Name>RotaryEmbedding``, ``<Name>RMSNorm`` in ``models.<type>.modeling_<type>``),
        derived from transformers' model type: a starting point for a new plugin's family.json."""
        from transformers import CONFIG_MAPPING

        try:
            config_cls = CONFIG_MAPPING[model_type]
        except KeyError:
            raise LLMOptionsError(f"unknown LLM family {family_id!r}: transformers has no model type {model_type!r}") from None
        name = config_cls.__name__[: -len("Config")]
        family = cls(
            family_id,
            name,
            (model_type,),
            f"(the Hugging Face repo of your {name} model)",
            module=f"transformers.models.{model_type}.modeling_{model_type}",
            classes_by_role=(
                ("config", config_cls.__name__),
                ("decoderLayer", f"{name}DecoderLayer"),
                ("rotaryEmbedding", f"{name}RotaryEmbedding"),
                ("rmsNorm", f"{name}RMSNorm"),
                ("model", f"{name}Model"),
                ("causalLM", f"{name}ForCausalLM"),
            ),
        )
        family.classes()
        return family

    def class_name(self, role: str) -> str | None:
        return dict(self.classes_by_role).get(role)

    def cls(self, role: str):
        """The transformers class of ``role`` (one of CLASS_ROLES), imported now. The config class may live in
        the sibling ``configuration_*`` module; a name transformers does not have is a FamilyError."""
        name = self.class_name(role)
        if name is None:
            raise FamilyError(f"LLM family {self.id!r} names no transformers class for {role!r}", self.source)
        where = [self.module]
        if ".modeling_" in self.module:
            where.append(self.module.replace(".modeling_", ".configuration_"))
        errors = []
        for module_name in where:
            try:
                module = importlib.import_module(module_name)
            except ImportError as e:
                errors.append(f"cannot import {module_name}: {e}")
                continue
            if hasattr(module, name):
                return getattr(module, name)
            errors.append(f"{module_name} has no {name}")
        raise FamilyError(
            f"LLM family {self.id!r} (model type {', '.join(self.model_types)}) cannot be built from the installed transformers: {'; '.join(errors)}",
            self.source,
            hint="fix the class names in the plugin's family.json (see the family's transformers modeling module)",
        )

    def classes(self):
        """(config, decoder layer, rotary embedding, RMSNorm) classes, the ones a decoder stack needs."""
        return tuple(self.cls(role) for role in _REQUIRED_ROLES)


# Where decoder layers live in the safetensors key space, most common first (text-only models, then
# the language half of multimodal ones).
_LAYER_PREFIXES = ("model.layers.", "model.language_model.layers.", "language_model.model.layers.", "model.model.layers.")


def resolve_checkpoint_dir(checkpoint: str, workspace_root: str | os.PathLike | None = None) -> Path:
    """A relative checkpoint path is relative to the workspace root (``$LLMED_WORKSPACE``, else cwd)."""
    p = Path(os.path.expanduser(str(checkpoint)))
    if p.is_absolute():
        return p
    root = workspace_root or workspace_root_from_env() or os.getcwd()
    return Path(root) / p


def _missing_folder_message(family: Family, folder: Path, what: str) -> str:
    return (
        f"{family.title} checkpoint {what}: {folder}. Put the Hugging Face checkpoint of the model there — "
        f"config.json plus model.safetensors, or model.safetensors.index.json with all the "
        f"model-XXXXX-of-YYYYY.safetensors shards it names — e.g. from the Hugging Face repo {family.hf_repo} "
        f"(`huggingface-cli download {family.hf_repo} --include 'config.json' '*.safetensors' "
        f"'model.safetensors.index.json' --local-dir {folder}`), or point the backbone's `checkpoint` option at "
        f"the folder that holds them. Only the chosen layers' tensors are read."
    )


def load_text_config(family: Family, folder: Path):
    """The transformers config of the checkpoint's text model (``text_config`` of multimodal ones)."""
    cfg_file = folder / "config.json"
    if not folder.is_dir():
        raise CheckpointError(_missing_folder_message(family, folder, "folder not found"), folder)
    if not cfg_file.is_file():
        raise CheckpointError(_missing_folder_message(family, folder, "folder has no config.json"), cfg_file)
    try:
        raw = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_file} is not valid JSON: {e}", cfg_file) from e
    text = raw.get("text_config") if isinstance(raw.get("text_config"), dict) else raw
    model_type = text.get("model_type") or raw.get("model_type")
    if model_type not in family.model_types:
        raise CheckpointError(f"checkpoint {cfg_file} has model_type {model_type!r}, which is not a {family.title} model (expected {', '.join(family.model_types)})", cfg_file)
    config_cls = family.cls("config")
    fields = {k: v for k, v in text.items() if k not in ("model_type", "architectures", "auto_map", "text_config", "vision_config")}
    config = config_cls(**fields)
    return config


def _index(folder: Path, family: Family) -> dict[str, str]:
    """key → shard file name, from the index if sharded, else from the single file's header."""
    index_file = folder / "model.safetensors.index.json"
    if index_file.is_file():
        try:
            weight_map = json.loads(index_file.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"{index_file} is not a safetensors index (no weight_map): {e}", index_file) from e
        return dict(weight_map)
    single = folder / "model.safetensors"
    if single.is_file():
        with safe_open(str(single), framework="pt") as f:  # reads the header only
            return {k: single.name for k in f.keys()}
    others = sorted(p.name for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pth", ".pt"))
    hint = f" (found {', '.join(others)}; only safetensors are read)" if others else ""
    raise CheckpointError(_missing_folder_message(family, folder, f"folder has neither model.safetensors nor model.safetensors.index.json{hint}"), folder)


def _layer_prefix(keys: Sequence[str], source: Path) -> str:
    for prefix in _LAYER_PREFIXES:
        if any(k.startswith(prefix) for k in keys):
            return prefix
    sample = ", ".join(sorted(keys)[:5])
    raise CheckpointError(f"no decoder layers found in {source}: expected keys like 'model.layers.0.…', got {sample} …", source)


def read_layer_tensors(folder: Path, family: Family, layers: Sequence[int], extra: Sequence[str] = ()) -> tuple[dict, list[str], list[str]]:
    """Read the tensors of decoder ``layers`` (and ``extra`` suffixes like ``'norm.weight'``).

    Returns ``(tensors, keys_read, files_opened)`` where ``tensors[(layer, local_key)]`` holds layer
    tensors and ``tensors[(None, extra)]`` the extras. Only the shards that hold those keys are opened.
    """
    weight_map = _index(folder, family)
    prefix = _layer_prefix(list(weight_map), folder)
    model_prefix = prefix[: -len("layers.")]
    wanted: dict[str, tuple] = {}
    for layer in layers:
        lp = f"{prefix}{layer}."
        keys = [k for k in weight_map if k.startswith(lp)]
        if not keys:
            raise CheckpointError(f"checkpoint {folder} has no tensors for layer {layer} (no keys '{lp}*')", folder)
        for k in keys:
            wanted[k] = (layer, k[len(lp) :])
    for suffix in extra:
        key = model_prefix + suffix
        if key not in weight_map:
            raise CheckpointError(f"checkpoint {folder} has no tensor '{key}'", folder)
        wanted[key] = (None, suffix)
    by_file: dict[str, list[str]] = {}
    for key in wanted:
        by_file.setdefault(weight_map[key], []).append(key)
    tensors: dict = {}
    opened: list[str] = []
    for fname in sorted(by_file):
        path = folder / fname
        if not path.is_file():
            raise CheckpointError(
                f"shard {fname} named by {folder / 'model.safetensors.index.json'} is missing from {folder}; it holds "
                f"{', '.join(sorted(by_file[fname])[:3])} …. Download it from the Hugging Face repo {family.hf_repo}.",
                path,
            )
        opened.append(fname)
        with safe_open(str(path), framework="pt") as f:
            present = set(f.keys())
            for key in by_file[fname]:
                if key not in present:
                    raise CheckpointError(f"{path} does not contain '{key}' although the index says so", path)
                tensors[wanted[key]] = f.get_tensor(key)
    return tensors, sorted(wanted), opened


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _causal_mask(length: int, like: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """Additive causal mask; with ``window`` also hiding keys ``window`` or more tokens back (token i sees
    j when 0 <= i - j < window, transformers' ``create_sliding_window_causal_mask``)."""
    blocked = torch.ones(length, length, dtype=torch.bool, device=like.device).triu(1)
    if window is not None:
        blocked |= torch.ones(length, length, dtype=torch.bool, device=like.device).tril(-window)
    mask = torch.zeros(length, length, dtype=like.dtype, device=like.device).masked_fill(blocked, torch.finfo(like.dtype).min)
    return mask.view(1, 1, length, length)


def sliding_window_of(config, layer_idx: int) -> int | None:
    """The sliding attention window of decoder layer ``layer_idx`` as the family's own model applies it:
    ``config.layer_types[i] == 'sliding_attention'`` (Qwen2 with ``use_sliding_window``, from
    ``max_window_layers`` on; Gemma-style alternation), else every layer when the config has a
    ``sliding_window`` and no ``layer_types`` (Mistral); None for full attention."""
    window = getattr(config, "sliding_window", None)
    if not window:
        return None
    types = getattr(config, "layer_types", None)
    if types is not None:
        return int(window) if layer_idx < len(types) and types[layer_idx] == "sliding_attention" else None
    if getattr(config, "use_sliding_window", True) is False:
        return None
    return int(window)


class DecoderStack(nn.Module):
    """Chosen HF decoder layers applied in order to tokens ``(N, L, H)``, with explicit mask and RoPE.

    Attributes for inspection: ``family``, ``checkpoint`` (folder), ``layer_indices``, ``attention``,
    ``rope``, ``keys_read`` (checkpoint keys loaded) and ``files_opened`` (safetensors files opened).
    """

    def __init__(self, family: Family, config, layer_indices: Sequence[int], attention: str, rope: bool, final_norm: str, layer_device: str | torch.device | None = None):
        super().__init__()
        _, layer_cls, rotary_cls, norm_cls = family.classes()
        self.family = family.id
        self.config = config
        self.layer_indices = list(layer_indices)
        self.attention = attention
        self.use_rope = bool(rope)
        # Each layer's sliding window, honoured with causal attention (the family's model masks by it; the
        # layers themselves only pass it to flash kernels). A bidirectional set encoder has no window.
        self.windows = [sliding_window_of(config, int(i)) for i in layer_indices]
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        # layer_device='meta' skips the random init of weights that are about to be overwritten by the
        # checkpoint (seconds and a second copy in memory for an 8B model's layer)
        with torch.device(layer_device) if layer_device is not None else _nullcontext():
            self.layers = nn.ModuleList([layer_cls(config, layer_idx=i) for i in layer_indices])
        self.rotary = rotary_cls(config=config) if rope else None
        self.final_norm = norm_cls(config.hidden_size, eps=config.rms_norm_eps) if final_norm != "none" else None
        self.final_norm_mode = final_norm
        self.checkpoint: str | None = None
        self.keys_read: list[str] = []
        self.files_opened: list[str] = []

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    def position_embeddings(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        length = tokens.shape[1]
        if self.rotary is None:
            cos = tokens.new_ones(1, length, self.head_dim)
            return cos, torch.zeros_like(cos)
        position_ids = torch.arange(length, device=tokens.device).unsqueeze(0)
        return self.rotary(tokens, position_ids)

    def attention_mask(self, tokens: torch.Tensor, window: int | None = None) -> torch.Tensor:
        length = tokens.shape[1]
        if self.attention == "causal":
            return _causal_mask(length, tokens, window)
        return tokens.new_zeros(1, 1, length, length)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.shape[-1] != self.hidden_size:
            raise ValueError(f"{self.family} layers take {self.hidden_size}-wide tokens, got {tuple(tokens.shape)}")
        masks = {w: self.attention_mask(tokens, w) for w in set(self.windows)}
        cos_sin = self.position_embeddings(tokens)
        position_ids = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0)
        x = tokens
        for layer, window in zip(self.layers, self.windows):
            out = layer(x, attention_mask=masks[window], position_ids=position_ids, position_embeddings=cos_sin)
            x = out[0] if isinstance(out, tuple) else out
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x

    def extra_repr(self) -> str:
        return f"family={self.family}, layers={self.layer_indices}, attention={self.attention}, rope={self.use_rope}, final_norm={self.final_norm_mode}"


def _reinit(module: nn.Module, std: float) -> None:
    """Fresh weights like a from-scratch HF model: Linear ~ N(0, std), biases 0, norms 1."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif hasattr(m, "weight") and isinstance(m.weight, nn.Parameter) and m.weight.dim() == 1:
            nn.init.ones_(m.weight)


def _load_strict(module: nn.Module, state: dict, what: str, folder: Path) -> None:
    expected = set(module.state_dict().keys())
    given = set(state)
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected)}")
        raise CheckpointError(f"{what} of checkpoint {folder} does not match transformers' layer: {'; '.join(parts)}", folder)
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise CheckpointError(f"{what} of checkpoint {folder} has tensors of the wrong shape: {e}", folder) from e


# The node options build_decoder_stack reads. They arrive filled in from the descriptor's schema
# (packages/core/src/llm.ts, the one place of their defaults); a caller that left one out gets an error, not a guess.
_OPTION_KEYS = ("checkpoint", "layers", "hiddenSize", "init", "trainable", "attention", "rope", "finalNorm", "lora")
_LORA_KEYS = ("rank", "alpha", "dropout", "targets")


def build_decoder_stack(family: Family, options: dict, inputs: dict | None = None, workspace_root: str | None = None, attn_implementation: str = "sdpa") -> DecoderStack:
    """Build the LLM backbone node of ``family`` (the :class:`Family` its plugin read from its family.json).

    ``options`` are the ModelSpec node's filled-in options (``checkpoint``, ``layers``, ``hiddenSize``,
    ``init``, ``trainable``, ``attention``, ``rope``, ``finalNorm``, ``lora``); ``inputs['tokens']['width']``,
    when given, must equal the hidden size. Raises :class:`CheckpointError` for a missing folder / shard /
    tensor and :class:`LLMOptionsError` for options that do not fit the checkpoint.
    """
    if not isinstance(family, Family):
        raise LLMOptionsError(f"build_decoder_stack takes the plugin's Family object (Family.from_json(<plugin>/family.json)), got {family!r}")
    opts = dict(options or {})
    absent = [k for k in _OPTION_KEYS if k not in opts]
    if absent:
        raise LLMOptionsError(
            f"{family.title} backbone options lack {', '.join(absent)}: they arrive filled in from the descriptor's schema (compose the model with @llmed/core, or pass every option)"
        )
    fam = family
    if not opts["checkpoint"]:
        raise LLMOptionsError(f"{fam.title} backbone needs a `checkpoint` folder option")
    folder = resolve_checkpoint_dir(opts["checkpoint"], workspace_root)
    config = load_text_config(fam, folder)
    config._attn_implementation = attn_implementation

    layers = [int(i) for i in opts["layers"]]
    n_layers = int(config.num_hidden_layers)
    bad = [i for i in layers if not (0 <= i < n_layers)]
    if bad:
        raise LLMOptionsError(f"layer index {bad[0]} is out of range: checkpoint {folder} has {n_layers} layers (0..{n_layers - 1})", folder)
    # Checked here as well as in the descriptor's resolve: the checkpoint folder may not have existed when
    # the model was composed (checkpointFound false), so this is the first time they meet.
    hidden = opts["hiddenSize"]
    if int(hidden) != int(config.hidden_size):
        raise LLMOptionsError(f"hiddenSize {hidden} does not match checkpoint {folder / 'config.json'}, whose hidden_size is {config.hidden_size}", folder)
    width = ((inputs or {}).get("tokens") or {}).get("width")
    if width is not None and int(width) != int(config.hidden_size):
        raise LLMOptionsError(f"tokens reaching the {fam.title} layers are {width} wide; checkpoint {folder} has hidden_size {config.hidden_size}", folder)

    pretrained = opts["init"] == "pretrained"
    stack = DecoderStack(fam, config, layers, opts["attention"], bool(opts["rope"]), opts["finalNorm"], layer_device="meta" if pretrained else None)
    stack.checkpoint = str(folder)
    if not pretrained:
        if opts["finalNorm"] == "checkpoint":
            raise LLMOptionsError("finalNorm 'checkpoint' loads a pretrained norm, which contradicts init 'random'")
        _reinit(stack, float(getattr(config, "initializer_range", 0.02)))
    else:
        extra = ["norm.weight"] if opts["finalNorm"] == "checkpoint" else []
        tensors, keys, files = read_layer_tensors(folder, fam, stack.layer_indices, extra)
        for pos, idx in enumerate(stack.layer_indices):
            state = {k: t.to(torch.float32) for (layer, k), t in tensors.items() if layer == idx}
            _load_strict(stack.layers[pos], state, f"layer {idx}", folder)
        if extra:
            _load_strict(stack.final_norm, {"weight": tensors[(None, "norm.weight")].to(torch.float32)}, "final norm", folder)
        stack.keys_read, stack.files_opened = keys, files
        left = [n for n, t in [*stack.named_parameters(), *stack.named_buffers()] if t.is_meta]
        if left:
            raise CheckpointError(f"checkpoint {folder} left {', '.join(left)} unloaded", folder)
    stack.float()

    trainable = bool(opts["trainable"])
    for p in stack.parameters():
        p.requires_grad_(trainable)
    if opts["lora"]:
        _inject_lora(stack, fam, opts["lora"], folder)
    return stack


def _inject_lora(stack: DecoderStack, family: Family, lora: dict, folder: Path) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    absent = [k for k in _LORA_KEYS if k not in lora]
    if absent:
        raise LLMOptionsError(f"lora lacks {', '.join(absent)} (the descriptor's resolve fills them in)")
    targets = list(lora["targets"])
    if not targets:
        raise LLMOptionsError("lora.targets must name at least one projection (e.g. q_proj, k_proj, v_proj)")
    names = {name.rsplit(".", 1)[-1] for name, m in stack.layers.named_modules() if isinstance(m, nn.Linear)}
    unknown = [t for t in targets if t not in names]
    if unknown:
        raise LLMOptionsError(f"LoRA target(s) {', '.join(unknown)} do not exist in {family.title} layers of {folder}; their linear projections are {', '.join(sorted(names))}")
    cfg = LoraConfig(r=int(lora["rank"]), lora_alpha=float(lora["alpha"]), lora_dropout=float(lora["dropout"]), target_modules=targets, bias="none")
    inject_adapter_in_model(cfg, stack.layers)
    for name, p in stack.named_parameters():
        if "lora_" in name:
            p.requires_grad_(True)
    stack.lora = dict(rank=cfg.r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout, targets=targets)


def merge_lora(module: nn.Module) -> int:
    """Fold every peft LoRA adapter inside ``module`` into its base weight (W ← W + α/r·B·A) and put the
    plain base layer back in its place, in place — peft's merge-and-unload, for ONNX export.
    Returns the number of merged layers."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # peft absent: nothing can have been injected
        return 0
    targets = [(name, m) for name, m in module.named_modules() if isinstance(m, LoraLayer)]
    for name, m in targets:
        m.merge()
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, m.get_base_layer())
    for m in module.modules():
        if isinstance(m, DecoderStack) and hasattr(m, "lora"):
            del m.lora
    return len(targets)
