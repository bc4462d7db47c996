"""Hugging Face decoder layers as a token encoder, loaded from a local checkpoint folder.

``build_decoder_stack(family, options, inputs)`` returns a :class:`DecoderStack`: the chosen decoder
layers of a LLaMA-2/3, Phi-3 or Qwen2 checkpoint, built with transformers' own layer class for the
family and loaded strictly from only those layers' tensors (the safetensors index tells which shard
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
    "FAMILIES",
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


@dataclass(frozen=True)
class Family:
    """One transformers architecture family and where its classes live."""

    id: str
    title: str
    model_types: tuple[str, ...]
    hf_repo: str  # the Hugging Face repo to get weights from (for error messages)
    module: str
    config_class: str
    layer_class: str
    rotary_class: str
    norm_class: str

    def classes(self):
        mod = importlib.import_module(self.module)
        cfg_mod = importlib.import_module(self.module.replace(".modeling_", ".configuration_"))
        return (getattr(cfg_mod, self.config_class), getattr(mod, self.layer_class),
                getattr(mod, self.rotary_class), getattr(mod, self.norm_class))


_LLAMA = dict(module="transformers.models.llama.modeling_llama", config_class="LlamaConfig",
              layer_class="LlamaDecoderLayer", rotary_class="LlamaRotaryEmbedding", norm_class="LlamaRMSNorm")
FAMILIES: dict[str, Family] = {
    "llama2": Family("llama2", "LLaMA 2", ("llama",), "meta-llama/Llama-2-7b-hf", **_LLAMA),
    "llama3": Family("llama3", "LLaMA 3", ("llama",), "meta-llama/Meta-Llama-3-8B", **_LLAMA),
    "phi3": Family("phi3", "Phi-3", ("phi3", "phi3_v"), "microsoft/Phi-3-mini-4k-instruct",
                   module="transformers.models.phi3.modeling_phi3", config_class="Phi3Config",
                   layer_class="Phi3DecoderLayer", rotary_class="Phi3RotaryEmbedding", norm_class="Phi3RMSNorm"),
    "qwen2": Family("qwen2", "Qwen2", ("qwen2",), "Qwen/Qwen2-7B",
                    module="transformers.models.qwen2.modeling_qwen2", config_class="Qwen2Config",
                    layer_class="Qwen2DecoderLayer", rotary_class="Qwen2RotaryEmbedding", norm_class="Qwen2RMSNorm"),
}

def register_family(family: Family) -> None:
    """Make a family known under ``family.id`` (a third-party LLM plugin's Python package calls this at
    import when its classes do not follow transformers' usual names)."""
    FAMILIES[family.id] = family


def family_from_model_type(family_id: str, model_type: str) -> Family:
    """A family for any transformers decoder whose classes have the usual names (``<Name>Config``,
    ``<Name>DecoderLayer``, ``<Name>RotaryEmbedding``, ``<Name>RMSNorm`` in ``models.<type>.modeling_<type>``):
    Mistral, Gemma, ... — so a third-party family plugin needs no Python of its own beyond naming its id."""
    from transformers import CONFIG_MAPPING

    try:
        config_cls = CONFIG_MAPPING[model_type]
    except KeyError:
        raise LLMOptionsError(f"unknown LLM family {family_id!r}: transformers has no model type {model_type!r}; "
                              f"known families: {', '.join(FAMILIES)}") from None
    name = config_cls.__name__[: -len("Config")]
    family = Family(family_id, name, (model_type,), f"(the Hugging Face repo of your {name} model)",
                    module=f"transformers.models.{model_type}.modeling_{model_type}", config_class=config_cls.__name__,
                    layer_class=f"{name}DecoderLayer", rotary_class=f"{name}RotaryEmbedding", norm_class=f"{name}RMSNorm")
    try:
        family.classes()
    except (ImportError, AttributeError) as e:
        raise LLMOptionsError(f"LLM family {family_id!r} (model type {model_type!r}) cannot be built from transformers: {e}; "
                              f"its Python package must call llmed.llm.register_family(Family(...)) with its classes") from None
    return family


def resolve_family(family_id: str, folder: Path | None = None) -> Family:
    """The family ``family_id``: a registered one, else derived from the checkpoint's model type."""
    if family_id in FAMILIES:
        return FAMILIES[family_id]
    cfg = (folder / "config.json") if folder is not None else None
    if cfg is None or not cfg.is_file():
        raise LLMOptionsError(f"unknown LLM family {family_id!r}; known: {', '.join(FAMILIES)} (or a checkpoint whose "
                              f"config.json names a transformers model type)")
    try:
        raw = json.loads(cfg.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg} is not valid JSON: {e}", cfg) from e
    text = raw.get("text_config") if isinstance(raw.get("text_config"), dict) else raw
    return family_from_model_type(family_id, str(text.get("model_type") or raw.get("model_type")))


# Where decoder layers live in the safetensors key space, most common first (text-only models, then
# the language half of multimodal ones).
_LAYER_PREFIXES = ("model.layers.", "model.language_model.layers.", "language_model.model.layers.", "model.model.layers.")

_DEFAULTS: dict[str, Any] = {
    "layers": None, "hiddenSize": None, "init": "pretrained", "trainable": False, "attention": "bidirectional",
    "rope": False, "finalNorm": "none", "lora": None,
}


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
        raise CheckpointError(
            f"checkpoint {cfg_file} has model_type {model_type!r}, which is not a {family.title} model "
            f"(expected {', '.join(family.model_types)})", cfg_file)
    config_cls = family.classes()[0]
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
            wanted[k] = (layer, k[len(lp):])
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
                f"{', '.join(sorted(by_file[fname])[:3])} …. Download it from the Hugging Face repo {family.hf_repo}.", path)
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

    def __init__(self, family: Family, config, layer_indices: Sequence[int], attention: str, rope: bool, final_norm: str,
                 layer_device: str | torch.device | None = None):
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
        return (f"family={self.family}, layers={self.layer_indices}, attention={self.attention}, "
                f"rope={self.use_rope}, final_norm={self.final_norm_mode}")


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


def build_decoder_stack(family: str, options: dict, inputs: dict | None = None, workspace_root: str | None = None,
                        attn_implementation: str = "sdpa") -> DecoderStack:
    """Build the LLM backbone node of ``family`` (``llama2``/``llama3``/``phi3``/``qwen2``, a registered one, or
    any transformers decoder with the usual class names, found from the checkpoint's model type).

    ``options`` are the ModelSpec node options (``checkpoint``, ``layers``, ``hiddenSize``, ``init``,
    ``trainable``, ``attention``, ``rope``, ``finalNorm``, ``lora``); ``inputs['tokens']['width']``, when
    given, must equal the hidden size. Raises :class:`CheckpointError` for a missing folder / shard /
    tensor and :class:`LLMOptionsError` for options that do not fit the checkpoint.
    """
    opts = {**_DEFAULTS, **(options or {})}
    fam = resolve_family(family, resolve_checkpoint_dir(opts["checkpoint"], workspace_root) if opts.get("checkpoint") else None)
    if opts.get("attention") not in ("bidirectional", "causal"):
        raise LLMOptionsError(f"attention must be 'bidirectional' or 'causal', got {opts.get('attention')!r}")
    if opts.get("finalNorm") not in ("none", "ones", "checkpoint"):
        raise LLMOptionsError(f"finalNorm must be 'none', 'ones' or 'checkpoint', got {opts.get('finalNorm')!r}")
    if opts.get("init") not in ("pretrained", "random"):
        raise LLMOptionsError(f"init must be 'pretrained' or 'random', got {opts.get('init')!r}")
    if "checkpoint" not in opts or not opts["checkpoint"]:
        raise LLMOptionsError(f"{fam.title} backbone needs a `checkpoint` folder option")
    folder = resolve_checkpoint_dir(opts["checkpoint"], workspace_root)
    config = load_text_config(fam, folder)
    config._attn_implementation = attn_implementation

    layers = list(opts.get("layers") or [])
    if not layers:
        raise LLMOptionsError(f"{fam.title} backbone needs at least one layer index (`layers`)")
    n_layers = int(config.num_hidden_layers)
    bad = [i for i in layers if not (0 <= int(i) < n_layers)]
    if bad:
        raise LLMOptionsError(f"layer index {bad[0]} is out of range: checkpoint {folder} has {n_layers} layers (0..{n_layers - 1})", folder)
    hidden = opts.get("hiddenSize")
    if hidden is not None and int(hidden) != int(config.hidden_size):
        raise LLMOptionsError(f"hiddenSize {hidden} does not match checkpoint {folder / 'config.json'}, whose hidden_size is {config.hidden_size}", folder)
    width = ((inputs or {}).get("tokens") or {}).get("width")
    if width is not None and int(width) != int(config.hidden_size):
        raise LLMOptionsError(f"tokens reaching the {fam.title} layers are {width} wide; checkpoint {folder} has hidden_size {config.hidden_size}", folder)

    pretrained = opts["init"] == "pretrained"
    stack = DecoderStack(fam, config, [int(i) for i in layers], opts["attention"], bool(opts["rope"]), opts["finalNorm"],
                         layer_device="meta" if pretrained else None)
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

    trainable = bool(opts.get("trainable"))
    for p in stack.parameters():
        p.requires_grad_(trainable)
    lora = opts.get("lora")
    if lora:
        _inject_lora(stack, fam, lora, folder)
    return stack


def _inject_lora(stack: DecoderStack, family: Family, lora: dict, folder: Path) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    targets = list(lora.get("targets") or [])
    if not targets:
        raise LLMOptionsError("lora.targets must name at least one projection (e.g. q_proj, k_proj, v_proj)")
    names = {name.rsplit(".", 1)[-1] for name, m in stack.layers.named_modules() if isinstance(m, nn.Linear)}
    unknown = [t for t in targets if t not in names]
    if unknown:
        raise LLMOptionsError(f"LoRA target(s) {', '.join(unknown)} do not exist in {family.title} layers of {folder}; "
                              f"their linear projections are {', '.join(sorted(names))}")
    cfg = LoraConfig(r=int(lora.get("rank", 64)), lora_alpha=float(lora.get("alpha", 64)),
                     lora_dropout=float(lora.get("dropout", 0.0)), target_modules=targets, bias="none")
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
