"""Report generation: the model built from a ReportModelSpec, its prepared data, and its trainer.

``ReportModel(spec, workspace_root, plugins)``: encoder (volume → visual tokens) → projector (tokens of the
LLM's width) → :class:`llmed.causal_lm.CausalLM`; losses from the spec's Loss plugins. Plugin code comes
from ``plugins`` (id → python entry) exactly as for registration (llmed.assemble).

Prepared data (``ReportData``): a folder with ``samples.json`` — a list (or ``{"samples": [...]}``) of
``{id, image, region, kind: 'report'|'vqa', prompt, answer, options?, split?}`` where ``image`` names a
prepared volume relative to the folder (``volumes/case01`` or ``volumes/case01.json``: the raw float32 +
JSON header that @llmed/imaging's ``writePreparedVolume`` writes) and ``split`` is train (default), val or
test. VQA samples carry their choices in the prompt; ``options`` ({letter: text}) is kept for evaluation.

``ReportTrainer`` runs through the same bridge as registration (``options.trainer =
'llmed.report:ReportTrainer'``; same start/status/stop/wait, same log.jsonl events and checkpoint files):

* **stages** (``train.stages``): e.g. projector alignment, then LoRA; each stage sets the trainable groups
  (encoder, projector, lora, embeddings, new-tokens) and gets a fresh AdamW with warm-up + cosine decay;
* **gradient accumulation** (``train.gradientAccumulation`` micro-batches of ``train.batchSize`` per step);
* **checkpoints** of the trainable tensors only (llmed.checkpoint: frozen LLM and encoder weights are not
  written, a fingerprint of them is), ``resume`` mid-stage with optimizer and RNG state;
* **budgets**: ``train.timeBudgetMinutes`` (and Stop) finish the step, save ``last`` and end ``stopped``;
* **frozen encoders** (i3resnet152, a frozen vit3d) run once per sample: their tokens are cached in memory
  and on disk (``<prepared>/features/<key>/``), keyed by the encoder node and the sample's volume;
* **precision**: bf16 autocast on CUDA where supported, and on CPUs with bf16 instructions (AMX /
  AVX512-BF16) when ``train.precision`` is 'auto' or 'bf16'; gradient checkpointing when asked for.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from .assemble import load_factory, python_entry
from .causal_lm import IGNORE, CausalLM
from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint_record, save_checkpoint
from .data import DataError, PairSampler, open_volume
from .files import remove_stale_temporaries
from .nn import cpu_has_bf16
from .train import NonFiniteLoss, Trainer, TrainingConfigError, lr_at, peak_memory, resolve_device, seed_everything

GROUPS = ("encoder", "projector", "lora", "embeddings", "new-tokens")

# The report experiment's train and generate keys, every one filled by the TypeScript side from its schema
# (packages/core/src/config-report.ts; ajv useDefaults) and read here as they are: no defaults in Python.
REPORT_TRAIN_KEYS = (
    "stages",
    "batchSize",
    "gradientAccumulation",
    "optimizer",
    "weightDecay",
    "schedule",
    "warmup",
    "maxLength",
    "precision",
    "gradientCheckpointing",
    "seed",
    "checkpointEvery",
    "validateEvery",
    "timeBudgetMinutes",
    "maxSamples",
)
GENERATE_KEYS = ("strategy", "maxNewTokens", "temperature", "topP", "seed")


def report_sections(config: dict) -> tuple[dict, dict]:
    """``config["train"]`` and ``config["generate"]`` of a report experiment, refused naming any key the
    TypeScript side did not fill."""
    out = []
    for section, keys in (("train", REPORT_TRAIN_KEYS), ("generate", GENERATE_KEYS)):
        value = config.get(section)
        if not isinstance(value, dict):
            raise TrainingConfigError(f"the report config has no {section} section")
        missing = [k for k in keys if k not in value]
        if missing:
            raise TrainingConfigError(
                f"{section}.{f', {section}.'.join(missing)} missing from the report config: the TypeScript side "
                "fills every default from its schema (packages/core/src/config-report.ts) before training"
            )
        out.append(dict(value))
    return out[0], out[1]


# ---- data ------------------------------------------------------------------------------------------


@dataclass
class ReportSample:
    id: str
    image: str
    region: str
    kind: str
    prompt: str
    answer: str
    options: dict | None = None
    split: str = "train"
    extra: dict = field(default_factory=dict)


class ReportData:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        path = self.folder / "samples.json"
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataError("prepared report data has no samples.json", where=str(path), hint="prepare the experiment's data first (see data.howToGet in its config)") from None
        except json.JSONDecodeError as err:
            raise DataError(f"samples.json is not valid JSON ({err})", where=str(path)) from None
        items = raw.get("samples") if isinstance(raw, dict) else raw
        if not isinstance(items, list):
            raise DataError('samples.json must be a list of samples (or {"samples": [...]})', where=str(path))
        self.samples: list[ReportSample] = []
        for i, item in enumerate(items):
            where = f"{path} [{i}]"
            if not isinstance(item, dict):
                raise DataError("a sample must be a JSON object", where=where)
            for key in ("id", "image", "prompt", "answer"):
                if not isinstance(item.get(key), str):
                    raise DataError(f"sample lacks the string field '{key}'", where=where)
            kind = item.get("kind", "report")
            if kind not in ("report", "vqa"):
                raise DataError(f"kind must be 'report' or 'vqa', not {kind!r}", where=where)
            split = item.get("split", "train")
            if split not in ("train", "val", "test"):
                raise DataError(f"split must be train, val or test, not {split!r}", where=where)
            known = {"id", "image", "region", "kind", "prompt", "answer", "options", "split"}
            self.samples.append(
                ReportSample(
                    item["id"], item["image"], str(item.get("region", "")), kind, item["prompt"], item["answer"], item.get("options"), split, {k: v for k, v in item.items() if k not in known}
                )
            )
        self.fingerprint = hashlib.sha256(path.read_bytes()).hexdigest()[:16]

    def split(self, name: str, kinds: list[str] | None = None) -> list[ReportSample]:
        return [s for s in self.samples if s.split == name and (not kinds or s.kind in kinds)]

    def volume(self, sample: ReportSample) -> torch.Tensor:
        """(1, K, J, I) float32 of the sample's prepared volume."""
        rel = Path(sample.image)
        name = rel.name[:-5] if rel.name.endswith(".json") else rel.name[:-4] if rel.name.endswith((".f32", ".i32")) else rel.name
        folder = (self.folder / rel.parent).resolve()
        if not str(folder).startswith(str(self.folder.resolve())):
            raise DataError(f"image path {sample.image!r} leaves the prepared folder", where=str(self.folder / "samples.json"))
        return torch.from_numpy(open_volume(folder, name).astype("float32", copy=True))


# ---- model -----------------------------------------------------------------------------------------


def _build_plugin(node: dict, plugins: dict | None, workspace_root: str | os.PathLike | None) -> nn.Module:
    options = dict(node.get("options") or {})
    options.setdefault("workspaceRoot", str(workspace_root or os.getcwd()))
    module = load_factory(python_entry(node, plugins), workspace_root)(options, node.get("inputs") or {})
    if not isinstance(module, nn.Module):
        raise TrainingConfigError(f"{node.get('path')} ({node.get('id')}): factory returned {type(module).__name__}, not a torch.nn.Module")
    return module


class ReportModel(nn.Module):
    def __init__(self, spec: dict, workspace_root: str | os.PathLike | None = None, plugins: dict | None = None):
        super().__init__()
        if spec.get("task") != "report":
            raise TrainingConfigError("not a report-generation spec (task is not 'report')")
        self.spec = spec
        self.encoder = _build_plugin(spec["encoder"], plugins, workspace_root)
        self.projector = _build_plugin(spec["projector"], plugins, workspace_root)
        self.lm = CausalLM(spec["llm"]["options"], workspace_root)
        self.loss_terms = nn.ModuleList()
        self.loss_meta: list[tuple[str, float]] = []
        for node in spec.get("losses", []):
            self.loss_terms.append(_build_plugin(node, plugins, workspace_root))
            self.loss_meta.append((node["id"], float(node.get("weight", 1.0))))
        self.image_tokens = int(spec["projector"]["output"]["length"]) if spec["projector"].get("output") else None
        # logits at the answer positions only, when every loss term can take them (see forward)
        self.targets_only = bool(self.loss_terms) and all(getattr(t, "targets_only", False) for t in self.loss_terms)
        self.encoder_trained = False

    def set_stage(self, groups: list[str]) -> None:
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise TrainingConfigError(f"unknown trainable group(s) {unknown}; known: {', '.join(GROUPS)}")
        frozen_encoder = bool(getattr(self.encoder, "frozen", False))
        if "encoder" in groups and frozen_encoder:
            raise TrainingConfigError(f"{self.spec['encoder']['id']} is a frozen encoder; remove 'encoder' from the stage's train list")
        self.encoder.requires_grad_("encoder" in groups)
        self.encoder_trained = "encoder" in groups
        self.projector.requires_grad_("projector" in groups)
        self.lm.set_trainable(set(groups))

    def encode(self, volumes: torch.Tensor) -> torch.Tensor:
        return self.encoder(volumes)

    def forward(self, batch: dict[str, torch.Tensor], all_logits: bool = False) -> dict[str, torch.Tensor]:
        """``logits`` (N, T, V) at every position; or, when the batch has labels and every loss term takes
        target positions only (``targets_only``) and ``all_logits`` is off, ``logits`` (K, V) at the K
        positions that predict an answer token and ``targets`` (K,) those tokens."""
        feats = batch["features"] if "features" in batch else self.encode(batch["image"])
        tokens = self.projector(feats)
        if all_logits or "labels" not in batch or not self.targets_only:
            return {"logits": self.lm(batch["input_ids"], batch["attention_mask"], tokens), "image_tokens": tokens}
        labels = batch["labels"]
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = labels[:, 1:] != IGNORE  # position t predicts token t + 1
        logits = self.lm(batch["input_ids"], batch["attention_mask"], tokens, logits_at=keep)
        return {"logits": logits, "targets": labels[:, 1:][keep[:, :-1]], "image_tokens": tokens}

    def loss(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        total, terms = None, {}
        for (name, weight), term in zip(self.loss_meta, self.loss_terms):
            value = term(outputs, batch)
            terms[name] = float(value.detach().float())
            total = weight * value if total is None else total + weight * value
        if total is None:
            raise TrainingConfigError("the spec has no loss")
        return total, terms


# ---- trainer ---------------------------------------------------------------------------------------


def encoder_feature_key(spec: dict) -> str:
    """The feature cache's folder name for ``spec``'s encoder (id, options, inputs): another encoder, or the same
    one under other options or input shape, never reads these features."""
    node = spec["encoder"]
    text = json.dumps([node.get("id"), node.get("options"), node.get("inputs")], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_features(feature_dir: Path, image: str, encode) -> torch.Tensor:
    """The frozen encoder's tokens of prepared volume ``image`` from ``feature_dir`` (one file per volume), or
    ``encode()``'s, written there first under a temporary name and renamed (a reader never sees half a file)."""
    from safetensors.torch import load_file, save_file

    file = Path(feature_dir) / f"{hashlib.sha256(f'volume|{image}'.encode()).hexdigest()[:24]}.safetensors"
    if file.is_file():
        return load_file(str(file))["tokens"]
    feats = encode()
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(file.name + f".tmp-{os.getpid()}")
    save_file({"tokens": feats.contiguous()}, str(tmp))
    os.replace(tmp, file)
    return feats


class ReportTrainer(Trainer):
    """A report-generation run; the public API and status keys are registration's Trainer's."""

    def __init__(self, run_dir, spec, config, prepared_dir, options=None, *, distributed=None, model_factory=None, **_):
        if distributed is not None and int(getattr(distributed, "world_size", 1)) > 1:
            raise TrainingConfigError("report training runs in one process for now (no torchrun)")
        train, self.generate_cfg = report_sections(config)
        stages = train["stages"]
        # Registration's Trainer reads its own train keys; it gets the count of steps and the rest of the run's state.
        base = {
            "iterations": sum(int(s["steps"]) for s in stages) or 1,
            "lr": float(stages[0]["lr"]) if stages else 1.0,
            "lrSchedule": "constant",  # the report stages' own schedule (train.schedule, lr_at) sets the lr of each step
            "warmup": 0,
            "optimizer": "adamw",
            "batchSize": int(train["batchSize"]),
            "amp": True,
            "seed": int(train["seed"]),
            "validateEvery": int(train["validateEvery"]),
            "checkpointEvery": int(train["checkpointEvery"]),
            "timeBudgetMinutes": float(train["timeBudgetMinutes"]),
            "augment": {},  # registration's pair augmentation: nothing of it applies to report samples
        }
        super().__init__(run_dir, spec, {**config, "train": base}, prepared_dir, options)
        self.config = config  # the run folder keeps the report config as it is
        self.train_cfg = {**train, "iterations": base["iterations"]}
        root = self.options.get("workspaceRoot")
        plugins = self.options.get("plugins")
        self.report_factory = model_factory or (lambda s: ReportModel(s, root, plugins))
        self.stages = stages
        self._status.update({"val_loss": None, "samples": None, "stage": None})

    # ---- setup --------------------------------------------------------------------------------------

    def _setup(self) -> None:
        opts, t = self.options, self.train_cfg
        resume = bool(opts.get("resume"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir = self.run_dir / "checkpoints"
        remove_stale_temporaries(self.ckpt_dir)
        record = read_checkpoint_record(self.ckpt_dir, "last") if resume else None
        if not resume and (self.ckpt_dir / "last.json").exists():
            raise CheckpointError("run folder already has checkpoints", where=str(self.run_dir), hint="resume it (--resume) or train into a new run folder")
        for name, value in (("spec.json", self.spec), ("config.json", self.config)):
            if not (self.run_dir / name).exists():
                (self.run_dir / name).write_text(json.dumps(value, indent=2) + "\n")
        self._log_file = open(self.run_dir / "log.jsonl", "a", buffering=1)
        if not self.stages:
            raise TrainingConfigError("train.stages is empty")

        self.seed = int(t["seed"])
        self.total = int(t["iterations"])
        self.batch_size = int(opts.get("batchSize", t["batchSize"]))
        self.accumulate = int(t["gradientAccumulation"])
        self.max_length = int(t["maxLength"])
        self.validate_every = int(t["validateEvery"])
        self.checkpoint_every = int(t["checkpointEvery"])
        budget = float(opts.get("timeBudgetMinutes", t["timeBudgetMinutes"]) or 0)
        self.time_budget_s = budget * 60.0 if budget > 0 else None
        self.val_limit = int(opts.get("valSamples", 16))
        seed_everything(self.seed)
        if opts.get("threads"):
            torch.set_num_threads(int(opts["threads"]))
        self.device = resolve_device(opts.get("device"))

        self.data = ReportData(self.prepared_dir)
        kinds = list(self.config.get("data", {}).get("kinds") or ["report", "vqa"])
        self.train_samples = self.data.split("train", kinds)
        limit = int(t["maxSamples"])
        if limit:
            self.train_samples = self.train_samples[:limit]
        if not self.train_samples:
            raise DataError(f"samples.json has no training samples of kind {' or '.join(kinds)}", where=str(self.prepared_dir / "samples.json"))
        self.val_samples = self.data.split("val", kinds)[: self.val_limit]
        self.sampler = PairSampler(len(self.train_samples), self.seed)

        precision = str(opts.get("precision", t["precision"]))
        self.amp_dtype = None
        if precision != "fp32":
            if self.device.type == "cuda" and torch.cuda.is_bf16_supported():
                self.amp_dtype = torch.bfloat16
            elif self.device.type == "cpu" and (precision == "bf16" or cpu_has_bf16()):
                self.amp_dtype = torch.bfloat16
        self.scaler = None
        # The frozen LLM weights in bf16 on a GPU that trains in bf16 (an 8 B model: 16 GB instead of 32); what
        # trains stays float32 (AdamW on bf16 weights loses small updates). ``options.llmDtype`` forces one.
        llm_dtype = str(opts.get("llmDtype", "auto"))
        if llm_dtype == "auto":
            llm_dtype = "bfloat16" if self.device.type == "cuda" and self.amp_dtype == torch.bfloat16 else "float32"
        build_spec = self.spec
        if llm_dtype != "float32":
            build_spec = json.loads(json.dumps(self.spec))
            build_spec["llm"]["options"]["loadDtype"] = llm_dtype
        self.model = self.report_factory(build_spec).to(self.device)
        groups_ever = {g for s in self.stages for g in s["train"]}
        self.model.set_stage(sorted(groups_ever))
        trainable_ever = {n for n, p in self.model.named_parameters() if p.requires_grad}
        for n, p in self.model.named_parameters():
            if n in trainable_ever and p.dtype != torch.float32:
                p.data = p.data.float()
        self.base_names = [n for n, _ in self.model.named_parameters() if n not in trainable_ever]
        self.base_sha = self._base_fingerprint()
        self.cache_features = "encoder" not in groups_ever
        self._features: dict[str, torch.Tensor] = {}
        self.feature_dir = Path(opts.get("featureCache") or self.prepared_dir / "features") / encoder_feature_key(self.spec)
        if t["gradientCheckpointing"]:
            self.model.lm.gradient_checkpointing()

        # Stages as phases: (index 1.., start, steps).
        self.stage_bounds, start = [], 0
        for i, s in enumerate(self.stages):
            self.stage_bounds.append((i + 1, start, int(s["steps"])))
            start += int(s["steps"])
        self.best: dict | None = None
        self.step = 0
        self.stage_pos = 0
        self.optimizer = None
        self._last_saved_step = -1
        if record is not None:
            self.step = int(record["step"])
            self.best = record.get("best")
            if record.get("dataset") and record["dataset"] != self.data.fingerprint:
                self._event("warning", message="the prepared samples changed since this run's checkpoint")
            self._last_saved_step = self.step
        self._resume_record = record
        self._update(
            state="running",
            device=str(self.device),
            step=self.step,
            start_step=self.step,
            total=self.total,
            phases=len(self.stages),
            best=self.best,
            amp=None if self.amp_dtype is None else "bfloat16",
            global_batch=self.batch_size * self.accumulate,
        )
        self._event(
            "resume" if record else "start",
            step=self.step,
            total=self.total,
            device=str(self.device),
            amp=self._status["amp"],
            stages=[s["name"] for s in self.stages],
            seed=self.seed,
            trainable=sum(p.numel() for n, p in self.model.named_parameters() if n in trainable_ever),
            baseWeights=len(self.base_names),
            batchSize=self.batch_size,
            gradientAccumulation=self.accumulate,
            trainSamples=len(self.train_samples),
            valSamples=len(self.val_samples),
            cachedFeatures=self.cache_features,
            imageTokens=self.model.image_tokens,
            llmDtype=llm_dtype,
        )

    def _base_fingerprint(self) -> str:
        """What the frozen weights are: the LLM folder's files (names, sizes) and the frozen plugin options.
        Hashing 8 B parameters would take minutes; a changed checkpoint folder changes this key."""
        h = hashlib.sha256()
        folder = self.model.lm.folder
        for p in sorted(folder.iterdir()):
            if p.is_file():
                h.update(f"{p.name}:{p.stat().st_size}\n".encode())
        for key in ("encoder", "llm"):
            node = self.spec[key]
            h.update(json.dumps([node.get("id"), node.get("options")], sort_keys=True, default=str).encode())
        h.update(str(self.seed).encode())
        return h.hexdigest()

    # ---- batches ------------------------------------------------------------------------------------

    def _features_of(self, sample: ReportSample) -> torch.Tensor:
        """The frozen encoder's tokens of the sample's volume: one encoding per prepared volume (the regions
        of a scan, and every sample of a blind run's one empty volume, share it)."""
        if sample.image in self._features:
            return self._features[sample.image]

        def encode() -> torch.Tensor:
            self.model.encoder.eval()
            with torch.no_grad(), self._autocast():
                return self.model.encode(self.data.volume(sample).unsqueeze(0).to(self.device)).float().cpu()[0]

        feats = self._features[sample.image] = cached_features(self.feature_dir, sample.image, encode)
        return feats

    def _batch(self, samples: list[ReportSample], n_tokens: int | None = None) -> dict[str, torch.Tensor]:
        lm = self.model.lm
        n_img = n_tokens if n_tokens is not None else self.model.image_tokens
        encoded = [lm.encode_sample(int(n_img), s.prompt, s.answer, self.max_length) for s in samples]
        batch = lm.collate(encoded, self.device)
        if self.cache_features:
            batch["features"] = torch.stack([self._features_of(s) for s in samples]).to(self.device)
        else:
            batch["image"] = torch.stack([self.data.volume(s) for s in samples]).to(self.device)
        return batch

    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(device_type=self.device.type, enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # ---- stages -------------------------------------------------------------------------------------

    def _stage_for(self, step: int) -> int:
        for i, (_, start, steps) in enumerate(self.stage_bounds):
            if step < start + steps:
                return i
        return len(self.stage_bounds) - 1

    def _enter_stage(self, pos: int, resuming: bool) -> None:
        index, start, steps = self.stage_bounds[pos]
        stage = self.stages[pos]
        self.stage_pos = pos
        self.model.set_stage(list(stage["train"]))
        if not self.model.encoder_trained:
            self.model.encoder.eval()
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise TrainingConfigError(f"stage '{stage['name']}' trains nothing")
        self.optimizer = torch.optim.AdamW(params, lr=float(stage["lr"]), weight_decay=float(self.train_cfg["weightDecay"]))
        record = self._resume_record if resuming else None
        mid = record is not None and int(record.get("phase", 1)) == index and self.step > start
        if record is not None:
            load_checkpoint(
                self.ckpt_dir, "last", model=self.model, base_names=self.base_names, base_sha256=self.base_sha, optimizer=self.optimizer if mid else None, restore_rng=True, map_location=self.device
            )
            self._resume_record = None
        self._update(phase=index, stage=stage["name"])
        self._event("phase", phase=index, stage=stage["name"], train=list(stage["train"]), start=start, iterations=steps, trainable=sum(p.numel() for p in params))

    def _train_step(self, step_number: int) -> tuple[float, dict[str, float]]:
        index, start, steps = self.stage_bounds[self.stage_pos]
        stage = self.stages[self.stage_pos]
        lr = lr_at(step_number - 1 - start, steps, float(stage["lr"]), float(self.train_cfg["warmup"]), str(self.train_cfg["schedule"]))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        if not self.model.encoder_trained:
            self.model.encoder.eval()
        self.optimizer.zero_grad(set_to_none=True)
        total_loss, terms_sum = 0.0, {}
        base = (step_number - 1) * self.batch_size * self.accumulate
        for micro in range(self.accumulate):
            draws = range(base + micro * self.batch_size, base + (micro + 1) * self.batch_size)
            samples = [self.train_samples[self.sampler.index(d)] for d in draws]
            batch = self._batch(samples)
            with self._autocast():
                out = self.model(batch)
                loss, terms = self.model.loss(out, batch)
            if not torch.isfinite(loss.detach()).all():
                raise NonFiniteLoss(f"loss is {float(loss.detach().float())} at step {step_number} (samples {', '.join(s.id for s in samples)}); training stopped, the last good checkpoint is kept")
            (loss / self.accumulate).backward()
            total_loss += float(loss.detach().float()) / self.accumulate
            for k, v in terms.items():
                terms_sum[k] = terms_sum.get(k, 0.0) + v / self.accumulate
        self.optimizer.step()
        return total_loss, {**terms_sum, "lr": lr}

    @torch.no_grad()
    def validate(self, identity: bool = False) -> dict | None:
        """Mean answer-token cross-entropy over the validation samples (lower is better)."""
        if not self.val_samples or identity:
            return None
        self.model.eval()
        losses = []
        for i in range(0, len(self.val_samples), self.batch_size):
            batch = self._batch(self.val_samples[i : i + self.batch_size])
            with self._autocast():
                out = self.model(batch)
                loss, _ = self.model.loss(out, batch)
            losses.append(float(loss.float()))
        self.model.train()
        return {"metric": "loss", "value": sum(losses) / len(losses), "pairs": len(self.val_samples), "higherIsBetter": False}

    @torch.no_grad()
    def generate_for(self, samples: list[ReportSample], **kwargs) -> list[dict]:
        gen = self.generate_cfg
        self.model.eval()
        batch = self._batch(samples)
        feats = batch["features"] if "features" in batch else self.model.encode(batch["image"])
        with self._autocast():
            tokens = self.model.projector(feats)
            out = self.model.lm.generate(
                [s.prompt for s in samples],
                tokens.float(),
                max_new_tokens=int(kwargs.get("maxNewTokens", gen["maxNewTokens"])),
                strategy=str(kwargs.get("strategy", gen["strategy"])),
                temperature=float(gen["temperature"]),
                top_p=float(gen["topP"]),
                seed=int(gen["seed"]),
                max_length=self.max_length + 4096,
            )
        self.model.train()
        return [{"id": s.id, "region": s.region, "prompt": s.prompt, "reference": s.answer, "generated": o["text"], "stopped": o["stopped"]} for s, o in zip(samples, out)]

    def _save(self, tag: str, with_optimizer: bool) -> None:
        index = self.stage_bounds[self.stage_pos][0]
        state = {
            "phase": index,
            "stage": self.stages[self.stage_pos]["name"],
            "total": self.total,
            "best": self.best,
            "seed": self.seed,
            "dataset": self.data.fingerprint,
            "preparedDir": str(self.prepared_dir),
            "device": str(self.device),
            "amp": self._status.get("amp"),
            "task": "report",
        }
        paths = save_checkpoint(
            self.ckpt_dir, tag, model=self.model, base_names=self.base_names, base_sha256=self.base_sha, step=self.step, state=state, optimizer=self.optimizer if with_optimizer else None
        )
        if tag == "last":
            self._last_saved_step = self.step
        self._event("checkpoint", which=tag, step=self.step, phase=index, path=os.path.relpath(paths["tensors"], self.run_dir))

    def _precompute_features(self) -> None:
        """Encode every sample once before the first step (a frozen encoder), so that step times and the ETA
        are those of training; progress goes to the status message and one ``features`` event."""
        todo = self.train_samples + self.val_samples
        start = time.time()
        for n, sample in enumerate(todo):
            if self._stop.is_set():
                return
            self._features_of(sample)
            self._update(message=f"encoding samples with the frozen {self.spec['encoder']['id']}: {n + 1}/{len(todo)}")
        self._event("features", samples=len(todo), seconds=round(time.time() - start, 3), folder=str(self.feature_dir))
        self._update(message=None)

    def _fit_projector(self) -> None:
        """A projector with feature statistics to fit (``needs_fit``, e.g. linear's ``normalise:
        'standardise'``) gets them from the training samples' cached features, once, before the first step,
        with the RMS of the LLM's token-embedding values as the scale its tokens should start at; the
        statistics are buffers, so checkpoints and the export carry them."""
        projector = self.model.projector
        if not getattr(projector, "needs_fit", False):
            return
        if not self.cache_features:
            raise TrainingConfigError(
                f"{self.spec['projector']['path']} ({self.spec['projector']['id']}) standardises the encoder's features with statistics fitted once, which needs a frozen encoder "
                "(cached features); this run trains the encoder: use normalise 'none' with a trained encoder"
            )
        emb = self.model.lm.model.get_input_embeddings().weight[: self.model.lm.old_rows]
        target = float(emb.detach().float().pow(2).mean().sqrt())
        info = projector.fit_features(torch.stack([self._features_of(s) for s in self.train_samples]).to(self.device), target_rms=target)
        self._event("projector-fit", **info)

    def _loop(self) -> None:
        resuming = self._resume_record is not None
        if self.step >= self.total:
            self._update(state="done", message="nothing to do: the run had already finished")
            self._event("done", step=self.step, best=self.best, message="already finished")
            return
        if self.cache_features:
            self._precompute_features()
        if not resuming and self.step == 0:
            self._fit_projector()
        self._enter_stage(self._stage_for(self.step), resuming)
        session_start, first = time.time(), self.step
        rate, last = None, time.time()
        while self.step < self.total:
            if self._stop.is_set():
                self._finish_stopped("requested", f"stopped on request after step {self.step}; checkpoints/last saved")
                return
            if self.time_budget_s is not None and self.step > first and time.time() - session_start >= self.time_budget_s:
                self._finish_stopped("time-budget", f"time budget of {self.time_budget_s / 60:g} min used up after step {self.step} of {self.total}; checkpoints/last saved (resume to continue)")
                return
            _, start, steps = self.stage_bounds[self.stage_pos]
            if self.step >= start + steps:
                self._enter_stage(self.stage_pos + 1, resuming=False)
            self._take_threads_request()
            loss, terms = self._train_step(self.step + 1)
            self.step += 1
            now = time.time()
            dt = max(now - last, 1e-9)
            last = now
            rate = 1.0 / dt if rate is None else 0.9 * rate + 0.1 / dt
            self._update(step=self.step, loss=loss, terms=terms, it_s=round(rate, 4), eta_s=round((self.total - self.step) / rate, 1), elapsed_s=round(now - self._started, 3))
            self._event("step", step=self.step, phase=self.stage_bounds[self.stage_pos][0], loss=loss, terms=terms, it_s=round(rate, 4))
            _, start, steps = self.stage_bounds[self.stage_pos]
            stage_end = self.step == start + steps
            if self.step % self.validate_every == 0 or self.step == self.total or stage_end:
                result = self.validate()
                if result is not None:
                    self._event("val", step=self.step, phase=self.stage_bounds[self.stage_pos][0], loss=result["value"], pairs=result["pairs"])
                    if self.best is None or result["value"] < self.best["value"]:
                        self.best = {"metric": "loss", "value": result["value"], "step": self.step, "phase": self.stage_bounds[self.stage_pos][0]}
                        self._save("best", with_optimizer=False)
                    self._update(val_loss=result["value"], best=self.best)
            if self.step % self.checkpoint_every == 0 or self.step == self.total or stage_end:
                self._save("last", with_optimizer=True)
        shown = (self.val_samples or self.train_samples)[: int(self.options.get("showSamples", 1))]
        samples = self.generate_for(shown) if shown else []
        elapsed = time.time() - session_start
        self._update(state="done", eta_s=0, samples=samples, elapsed_s=round(time.time() - self._started, 3), message=f"trained {self.step - first} steps in {elapsed:.1f} s")
        self._event("done", step=self.step, best=self.best, elapsed_s=round(elapsed, 3), samples=samples, **peak_memory(self.device))


def load_report_model(run_dir: str | os.PathLike, tag: str = "best", device: str = "cpu", workspace_root: str | None = None, plugins: dict | None = None) -> tuple[ReportModel, dict]:
    """A trained report model from its run folder (its own spec.json), checkpoint ``tag`` loaded strictly."""
    from .train import read_run_json

    run_dir = Path(run_dir)
    spec, config = read_run_json(run_dir, "spec.json"), read_run_json(run_dir, "config.json")
    if plugins is None:
        raise CheckpointError("building a run folder's model needs the registered plugins (plugins=...)", where=str(run_dir / "spec.json"))
    seed_everything(int(report_sections(config)[0]["seed"]))
    model = ReportModel(spec, workspace_root, plugins).to(device)
    groups = sorted({g for s in config["train"]["stages"] for g in s["train"]})
    model.set_stage(groups)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    base = [n for n, _ in model.named_parameters() if n not in trainable]
    record = load_checkpoint(run_dir / "checkpoints", tag, model=model, base_names=base, map_location=device)
    return model.eval(), record
