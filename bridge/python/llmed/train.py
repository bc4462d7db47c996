"""The training engine: one run of one experiment, in a Python thread that Node polls.

``Trainer(run_dir, spec, config, prepared_dir, options).start()`` runs, in a background thread:

    config -> spec -> build_model / build_loss -> Adam over the trainable parameters
           -> loop: seeded pair -> augmentation (``train.augment``, llmed.augment) -> forward (AMP on CUDA) -> loss -> finite? -> backward -> step
                    validation Dice every ``validateEvery`` steps, checkpoints every ``checkpointEvery``
           -> cascade phases (``train.cascade``) switch trainable parts between phases

and keeps a progress dict (``status()``) that the bridge polls; every event also goes to
``<run>/log.jsonl``. The thread never raises: failures end the run in state ``error`` with a kind,
a message naming what failed, and the traceback.

Decisions worth knowing
-----------------------
* **Resume** (``options.resume``) restores the model tensors, the optimizer (and GradScaler) state and
  the python/numpy/torch RNG states of ``checkpoints/last``; the pair sampler is a pure function of
  (seed, step). On the same device and thread count the losses after a resume are the ones the
  uninterrupted run produces.
* **Cascades**: ``train.cascade.iterations`` are per-step iteration counts; phase ``k`` (1-based, the
  papers' "step k") calls ``model.freeze_for_step(k, schedule)`` and gets a fresh optimizer over what is
  then trainable (the released LLaMA-Reg code trains each step in its own script with its own Adam).
  Between phases the model restarts from that phase's best validation checkpoint when there is one
  (LLaMA-Reg: "load best step-1 checkpoint"); ``options.phaseStart = 'last'`` keeps the last weights.
* **Half resolution** (LLM-Morph trains at half the prepared grid): when the spec's input grid differs
  from the prepared grid, the network sees corner-aligned trilinear resizes of both images; its
  finest field is upsampled to the prepared grid with displacements rescaled by the grid ratio
  (``llmed.nn.upsample_field``: (N−1)/(n−1) per axis with corner-aligned grids, about ×2 for half
  resolution; the papers' plain ×2 is off by a voxel fraction), the full-resolution moving image (and labels, in
  the loss) is warped with it, and the loss and validation Dice are computed at the prepared
  resolution. Coarser fields and warped images are passed to the loss as the network made them.
* **AMP** (``train.amp``): on CUDA bf16 autocast where the GPU supports it (its exponent range equals
  fp32's, so no loss scaling is needed), fp16 autocast + GradScaler otherwise (what the papers'
  ``torch.cuda.amp`` did); ``options.ampDtype`` forces one. On a CPU with bf16 arithmetic (AMX-BF16 or
  AVX512-BF16, ``llmed.nn.cpu_has_bf16``) bf16 autocast: the demo's step is 2.1x faster on a Sapphire Rapids
  core and learns as fast per step (bench/results/learning-diagnosis.md, sixth round); warping, losses and
  the optimiser stay float32 (autocast's CPU fp32 list). Other CPUs train in float32, where autocast would
  only be slower (``options.ampDtype: bf16`` forces it); ``ampDtype: fp32`` keeps float32 anywhere.
* **Non-finite loss**: the run stops before the backward pass of the step that produced it, with
  event ``error`` kind ``nan`` naming the step and the non-finite terms; the last good checkpoint is
  kept untouched (nothing is saved after a NaN).
* **Stop** (Ctrl-C in Node -> ``stop()``) and the **time budget** (``train.timeBudgetMinutes``, wall time
  of this session) both finish the current step, save ``last`` and end with event ``stopped``.
* **Several processes** (``distributed=``, a ``llmed.distributed.DistributedContext`` under torchrun): the
  hooks marked "distributed" below - DDP per phase, this rank's share of each global batch, stop flags
  agreed by all ranks, and only rank 0 validating and writing (log, checkpoints). ``train.batchSize`` is
  per process; the global batch is batchSize x world size. Without it the trainer is the single-process
  one it always was.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .atomic import atomic_write_json, remove_stale_temporaries
from .augment import PairAugmentation
from .checkpoint import CheckpointError, base_fingerprint, load_checkpoint, read_checkpoint_record, save_checkpoint
from .data import DataError, PairSampler, PreparedDataset
from .nn import cpu_has_bf16, use_onednn_conv3d

ModelFactory = Callable[[dict], nn.Module]
LossFactory = Callable[[dict], Callable[[dict, dict], tuple[torch.Tensor, dict]]]

TERMINAL_STATES = ("done", "stopped", "error")


class NonFiniteLoss(Exception):
    kind = "nan"


class TrainingConfigError(Exception):
    kind = "config"


# The training section's keys, every one filled by the TypeScript side from the experiment schema
# (packages/core/src/config.ts, ``train``; ajv ``useDefaults``) before a config reaches Python, and read
# here as they are: the schema is the one place for their defaults. ``cascade`` is optional by design.
TRAIN_KEYS = ("iterations", "lr", "lrSchedule", "warmup", "optimizer", "batchSize", "amp", "seed", "validateEvery", "checkpointEvery", "timeBudgetMinutes", "augment")


def train_section(config: dict) -> dict:
    """``config["train"]``, refused with the missing keys named when it was not filled from the schema."""
    t = config.get("train")
    if not isinstance(t, dict):
        raise TrainingConfigError("the config has no train section")
    missing = [k for k in TRAIN_KEYS if k not in t]
    if missing:
        raise TrainingConfigError(
            f"train.{', train.'.join(missing)} missing from the config: the TypeScript side fills every training default from the experiment schema (packages/core/src/config.ts) before training"
        )
    return dict(t)


def lr_at(step_in_stage: int, steps: int, lr: float, warmup: float, schedule: str) -> float:
    """The learning rate of step ``step_in_stage`` (0-based) of a phase of ``steps``: a linear warm-up over the first
    ``warmup`` fraction, then cosine decay to 0 at the phase's end (``'cosine'``) or ``lr`` itself (``'constant'``).
    Computed from the step alone, so a resumed run continues on the same curve without a scheduler state."""
    warm = int(math.ceil(warmup * steps))
    if step_in_stage < warm:
        return lr * (step_in_stage + 1) / warm
    if schedule == "constant":
        return lr
    progress = (step_in_stage - warm) / max(1, steps - warm)
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class Phase:
    """One cascade step (or the whole run when there is no cascade)."""

    index: int  # 1-based
    start: int  # first global step index of the phase
    iterations: int

    @property
    def end(self) -> int:
        return self.start + self.iterations


def plan_phases(train_cfg: dict) -> tuple[str | None, list[Phase]]:
    cascade = train_cfg.get("cascade")
    total = int(train_cfg["iterations"])
    if not cascade:
        return None, [Phase(1, 0, total)]
    counts = [int(n) for n in cascade["iterations"]]
    if sum(counts) != total:
        raise TrainingConfigError(f"train.iterations is {total}, but train.cascade.iterations add up to {sum(counts)}")
    phases, start = [], 0
    for i, n in enumerate(counts):
        phases.append(Phase(i + 1, start, n))
        start += n
    return str(cascade["schedule"]), phases


def peak_memory(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process (MB) and, on CUDA, peak allocated GPU memory (MB)."""
    import resource

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(choice: str | None) -> torch.device:
    choice = (choice or "auto").lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingConfigError("device 'cuda' was asked for, but torch sees no CUDA GPU (use --device cpu or auto)")
    if choice != "cpu" and not choice.startswith("cuda"):
        raise TrainingConfigError(f"device must be 'auto', 'cpu' or 'cuda', not {choice!r}")
    return torch.device(choice)


def default_model_factory(spec: dict, workspace_root: str | None = None, plugins: dict | None = None) -> nn.Module:
    from .assemble import build_model

    return build_model(spec, workspace_root, plugins)


def default_loss_factory(spec: dict, workspace_root: str | None = None, plugins: dict | None = None):
    from .assemble import build_loss

    return build_loss(spec, workspace_root, plugins)


def base_weight_names(model: nn.Module, schedule: str | None, phases: list[Phase]) -> list[str]:
    """Parameters frozen at build time *and* in every phase: the weights a checkpoint need not store
    (checkpoint.py). Leaves the model's freezing as the first phase wants it."""
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    if schedule is not None and hasattr(model, "freeze_for_step"):
        for phase in phases:
            model.freeze_for_step(phase.index, schedule)
            frozen &= {n for n, p in model.named_parameters() if not p.requires_grad}
        model.freeze_for_step(phases[0].index, schedule)
    return [n for n, _ in model.named_parameters() if n in frozen]


def loss_uses_labels(loss_fn: Any) -> bool:
    """Whether the loss reads ``moving_labels``/``fixed_labels``: a term says so with a ``uses_labels``
    attribute; a term that does not say is assumed to (labels are then built, costing memory, not
    correctness)."""
    terms = getattr(loss_fn, "terms", None)
    modules = list(terms) if isinstance(terms, (list, tuple, nn.ModuleList)) else [loss_fn]
    return any(bool(getattr(m, "uses_labels", True)) for m in modules)


def _float_terms(terms: dict) -> dict[str, float]:
    out = {}
    for k, v in (terms or {}).items():
        out[str(k)] = float(v.detach().float().item()) if torch.is_tensor(v) else float(v)
    return out


def dice_per_label(warped: torch.Tensor, fixed: torch.Tensor, labels: list[int]) -> list[float]:
    """Dice of each label value between two integer label maps; NaN where the label is in neither
    (skipped by the mean, instead of LLaMA-Reg's 0 that drags the mean down)."""
    scores = []
    for value in labels:
        a, b = warped == value, fixed == value
        denom = int(a.sum()) + int(b.sum())
        scores.append(float("nan") if denom == 0 else 2.0 * int((a & b).sum()) / denom)
    return scores


class Trainer:
    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        spec: dict,
        config: dict,
        prepared_dir: str | os.PathLike[str],
        options: dict | None = None,
        *,
        model_factory: ModelFactory | None = None,
        loss_factory: LossFactory | None = None,
        distributed: Any = None,
    ):
        self.run_dir = Path(run_dir)
        # distributed: rank 0 is the one that writes; the other ranks only compute (llmed.distributed).
        self.dist = distributed
        self.is_main = distributed is None or distributed.is_main
        self.world_size = 1 if distributed is None else int(distributed.world_size)
        self.ddp: nn.Module | None = None
        self.spec = spec
        self.config = config
        self.prepared_dir = Path(prepared_dir)
        self.options = dict(options or {})
        # Relative paths in the spec (LLM checkpoint folders) resolve against the workspace root. Plugin code
        # comes from ``options.plugins`` (the registered plugins by id) when given; see llmed.assemble.
        root = self.options.get("workspaceRoot")
        plugins = self.options.get("plugins")
        self.model_factory = model_factory or (lambda s: default_model_factory(s, root, plugins))
        self.loss_factory = loss_factory or (lambda s: default_loss_factory(s, root, plugins))
        self.train_cfg = train_section(config)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads_request: int | None = None  # set_threads: taken up by the training thread before a step
        self._thread: threading.Thread | None = None
        self._log_file = None
        self._started = time.time()
        total = int(self.train_cfg["iterations"])
        self._status: dict[str, Any] = {
            "state": "starting",
            "step": 0,
            "total": total,
            "phase": 1,
            "phases": 1,
            "loss": None,
            "terms": {},
            "it_s": None,
            "eta_s": None,
            "val_dice": None,
            "initial_dice": None,
            "best": None,
            "elapsed_s": 0.0,
            "device": None,
            "amp": None,
            "run_dir": str(self.run_dir),
            "pid": os.getpid(),
            "message": None,
            "kind": None,
            "traceback": None,
            "reason": None,
            "start_step": 0,
        }

    # ---- public API (thread-safe) -----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_guarded, name="llmed-train", daemon=True)
        self._thread.start()

    def run(self) -> dict:
        """Run in the calling thread (tests, scripts); returns the final status."""
        self._run_guarded()
        return self.status()

    def stop(self) -> None:
        self._stop.set()

    def set_threads(self, threads: int) -> None:
        """Use ``threads`` intra-op threads from the next step on. The training thread itself makes the change:
        with OpenMP, torch's thread count belongs to the thread that sets it."""
        if int(threads) < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self._threads_request = int(threads)

    def _take_threads_request(self) -> None:
        n, self._threads_request = self._threads_request, None
        if n is not None and n != torch.get_num_threads():
            torch.set_num_threads(n)
            self._event("threads", step=self.step, threads=n)

    def status(self) -> dict:
        with self._lock:
            snapshot = json.loads(json.dumps(self._status))
        if snapshot["state"] not in TERMINAL_STATES:
            snapshot["elapsed_s"] = round(time.time() - self._started, 3)
        return snapshot

    def wait(self, timeout_s: float | None = None) -> dict:
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.status()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- internals ----------------------------------------------------------------------------------

    def _update(self, **values: Any) -> None:
        with self._lock:
            self._status.update(values)

    def _event(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": round(time.time(), 3), **fields}
        if self._log_file is not None:
            self._log_file.write(json.dumps(record) + "\n")
            self._log_file.flush()

    def _run_guarded(self) -> None:
        try:
            self._setup()
            self._loop()
        except Exception as err:  # the thread must end in a state Node can read, never with a raise
            kind = getattr(err, "kind", None)
            kind = kind if isinstance(kind, str) else "bridge"
            message = str(err) or type(err).__name__
            if kind == "bridge" and not isinstance(err, (DataError, CheckpointError)):
                message = f"{type(err).__name__}: {message}"
            tb = traceback.format_exc()
            where = getattr(err, "where", None)
            hint = getattr(err, "hint", None)
            self._update(state="error", kind=kind, message=message, traceback=tb, where=where, hint=hint, elapsed_s=round(time.time() - self._started, 3))
            try:
                self._event("error", kind=kind, message=message, where=where, step=self._status.get("step"))
            except Exception:
                pass
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def _setup(self) -> None:
        opts = self.options
        resume = bool(opts.get("resume"))
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir = self.run_dir / "checkpoints"
        # What a kill during a checkpoint write left behind (<file>.tmp-<pid> of a process that is gone).
        stale = remove_stale_temporaries(self.ckpt_dir) if self.is_main else []
        record = read_checkpoint_record(self.ckpt_dir, "last") if resume else None
        if not resume and (self.ckpt_dir / "last.json").exists():
            raise CheckpointError("run folder already has checkpoints", where=str(self.run_dir), hint="resume it (--resume) or train into a new run folder")
        for name, value in (("spec.json", self.spec), ("config.json", self.config)):
            if self.is_main and not (self.run_dir / name).exists():
                atomic_write_json(self.run_dir / name, value)  # a kill never leaves half a spec.json
        self._log_file = open(self.run_dir / "log.jsonl", "a", buffering=1) if self.is_main else None
        if stale:
            self._event("cleaned", message=f"removed {len(stale)} temporary checkpoint file(s) left by an interrupted write", files=stale)

        t = self.train_cfg
        self.seed = int(t["seed"])
        self.total = int(t["iterations"])
        # Per process; ``options.batchSize`` overrides the config (a resume on another world size keeps the global batch).
        self.batch_size = int(opts.get("batchSize", t["batchSize"]))
        self.validate_every = int(t["validateEvery"])
        self.checkpoint_every = int(t["checkpointEvery"])
        budget_min = float(opts.get("timeBudgetMinutes", t["timeBudgetMinutes"]) or 0)
        self.time_budget_s = budget_min * 60.0 if budget_min > 0 else None
        # Every step is logged up to 10k steps; longer runs log ~10k step lines (progress is in status()).
        self.log_every = max(1, int(opts.get("logEvery", max(1, self.total // 10_000))))
        self.val_pairs_limit = opts.get("valPairs")
        self.phase_start = str(opts.get("phaseStart", "best"))
        self.schedule, self.phases = plan_phases(t)

        seed_everything(self.seed)
        if opts.get("threads"):
            torch.set_num_threads(int(opts["threads"]))
        self.device = resolve_device(opts.get("device"))
        self.data = PreparedDataset(self.prepared_dir)
        self.train_pairs = self.data.splits["train"]
        if not self.train_pairs:
            raise DataError("pairs.json has no training pairs", where=str(self.prepared_dir / "pairs.json"))
        self.val_list = self.data.splits["val"][: int(self.val_pairs_limit)] if self.val_pairs_limit else self.data.splits["val"]
        self.sampler = PairSampler(len(self.train_pairs), self.seed)
        self.augment = PairAugmentation(t["augment"], self.seed)

        self.model = self.model_factory(self.spec).to(self.device)
        self.loss_fn = self.loss_factory(self.spec)
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn = self.loss_fn.to(self.device)
        self.loss_uses_labels = loss_uses_labels(self.loss_fn)
        self.base_names = base_weight_names(self.model, self.schedule, self.phases)
        self.base_sha = base_fingerprint(self.model, self.base_names)
        if self.dist is not None:
            self.dist.check_same_base_weights(self.base_sha, len(self.base_names))

        spatial = self.spec.get("input", {}).get("spatial") or list(self.data.shape_ijk)
        self.net_kji = (int(spatial[2]), int(spatial[1]), int(spatial[0]))
        self.resized = self.net_kji != self.data.shape_kji

        self.amp_dtype: torch.dtype | None = None
        want = str(opts.get("ampDtype", "auto"))
        if bool(t["amp"]) and want != "fp32":
            if self.device.type == "cuda":
                self.amp_dtype = torch.bfloat16 if want == "bf16" or (want == "auto" and torch.cuda.is_bf16_supported()) else torch.float16
            elif self.device.type == "cpu" and (want == "bf16" or cpu_has_bf16()):
                self.amp_dtype = torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16) if self.device.type == "cuda" else None
        # CPU training: batch-1 3-D convolutions onto oneDNN (see llmed.nn.use_onednn_conv3d); the option
        # cpuConv "native" keeps PyTorch's own choice (bench/training compares the two).
        self.onednn_conv = self.device.type == "cpu" and use_onednn_conv3d(str(opts.get("cpuConv", "onednn")) != "native")

        self.best: dict | None = None
        self.step = 0
        self.phase_pos = 0
        self.optimizer: torch.optim.Optimizer | None = None
        self._last_saved_step = -1
        # Pairs drawn before this session's first step: the sampler continues there, whatever the world
        # size or batch size of the session that wrote the checkpoint (older checkpoints: step x batch).
        self._draw_base = (0, 0)
        if record is not None:
            self.step = int(record["step"])
            if self.step > self.total:
                raise CheckpointError(
                    f"checkpoint 'last' is at step {self.step}, beyond the {self.total} iterations of the run's config.json (train.iterations)",
                    where=str(self.ckpt_dir / "last.json"),
                    hint="the run's config.json was edited after training; restore train.iterations, or train a new run",
                )
            self._draw_base = (self.step, int(record.get("samplesSeen", self.step * self.batch_size)))
            self.best = record.get("best")
            if record.get("dataset") and record["dataset"] != self.data.fingerprint():
                self._event("warning", message="the prepared dataset's pairs changed since this run's checkpoint")
            self._last_saved_step = self.step

        self._update(
            state="running",
            device=str(self.device),
            step=self.step,
            start_step=self.step,
            total=self.total,
            phases=len(self.phases),
            best=self.best,
            world_size=self.world_size,
            global_batch=self.batch_size * self.world_size,
            amp=None if self.amp_dtype is None else str(self.amp_dtype).replace("torch.", ""),
        )
        self._event(
            "resume" if record else "start",
            step=self.step,
            total=self.total,
            device=str(self.device),
            amp=self._status["amp"],
            onednnConv3d=self.onednn_conv,
            phases=len(self.phases),
            seed=self.seed,
            trainable=sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            baseWeights=len(self.base_names),
            resized=self.resized,
            batchSize=self.batch_size,
            worldSize=self.world_size,
            globalBatch=self.batch_size * self.world_size,
            backend=None if self.dist is None else self.dist.backend,
        )
        self._resume_record = record

    def _phase_index_for(self, step: int) -> int:
        for i, phase in enumerate(self.phases):
            if step < phase.end:
                return i
        return len(self.phases) - 1

    def _enter_phase(self, pos: int, resuming: bool) -> None:
        phase = self.phases[pos]
        self.phase_pos = pos
        if self.schedule is not None and hasattr(self.model, "freeze_for_step"):
            self.model.freeze_for_step(phase.index, self.schedule)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise TrainingConfigError(f"phase {phase.index} has no trainable parameters")
        lr = float(self.train_cfg["lr"])
        if str(self.train_cfg["optimizer"]) == "adamw":
            self.optimizer = torch.optim.AdamW(params, lr=lr)
        else:
            self.optimizer = torch.optim.Adam(params, lr=lr)
        record = self._resume_record if resuming else None
        # Mid-phase resume: the saved optimizer belongs to this phase. Resuming exactly at a phase
        # boundary is entering a new phase, as the uninterrupted run does at that step.
        mid_phase = record is not None and int(record.get("phase", 1)) == phase.index and self.step > phase.start
        if record is not None:
            load_checkpoint(
                self.ckpt_dir,
                "last",
                model=self.model,
                base_names=self.base_names,
                base_sha256=self.base_sha,
                optimizer=self.optimizer if mid_phase else None,
                scaler=self.scaler if mid_phase else None,
                restore_rng=True,
                map_location=self.device,
            )
            self._resume_record = None
        if not mid_phase and pos > 0 and self.phase_start == "best" and self.best and int(self.best.get("phase", 0)) == self.phases[pos - 1].index:
            # LLaMA-Reg starts each cascade step from the previous step's best checkpoint.
            load_checkpoint(self.ckpt_dir, "best", model=self.model, base_names=self.base_names, base_sha256=self.base_sha, map_location=self.device)
            self._event("phase-start-from-best", phase=phase.index, bestStep=self.best.get("step"))
        if self.dist is not None:  # distributed: DDP over what this phase trains; broadcasts rank 0's weights
            self.ddp = self.dist.wrap(self.model, self.base_names, previous=self.ddp)
            if not self.dist.is_main:
                seed_everything(self.dist.rank_seed(self.seed, self.step))
        self._update(phase=phase.index)
        self._event("phase", phase=phase.index, schedule=self.schedule, start=phase.start, iterations=phase.iterations, trainable=sum(p.numel() for p in params))

    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(device_type=self.device.type, enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _forward(self, batch: dict[str, torch.Tensor], net: nn.Module | None = None) -> dict:
        """Model output with the finest field at the prepared resolution (see "Half resolution"). ``net`` is
        the DDP wrapper in a training step of a distributed run; validation calls the model itself."""
        from .nn import resize_image, upsample_field, warp

        net = self.model if net is None else net
        moving, fixed = batch["moving"], batch["fixed"]
        if not self.resized:
            return net(moving, fixed)
        out = net(resize_image(moving, self.net_kji), resize_image(fixed, self.net_kji))
        fields, warped = list(out["fields"]), list(out.get("warped", []))
        full = upsample_field(fields[-1].float(), rescale=True, size=self.data.shape_kji)
        fields[-1] = full
        if warped:
            warped[-1] = warp(moving, full)
        return {**out, "fields": fields, "warped": warped}

    @staticmethod
    def _loss_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: batch[k] for k in ("moving", "fixed", "moving_labels", "fixed_labels") if k in batch}

    def _draws_before(self, step_number: int) -> int:
        """Sampler draws used before step ``step_number`` (1-based): every step takes a global batch."""
        base_step, base_draws = self._draw_base
        return base_draws + (step_number - 1 - base_step) * self.batch_size * self.world_size

    def _train_step(self, step_number: int) -> tuple[float, dict[str, float]]:
        assert self.optimizer is not None
        phase = self.phases[self.phase_pos]
        lr = lr_at(step_number - 1 - phase.start, phase.iterations, float(self.train_cfg["lr"]), float(self.train_cfg["warmup"]), str(self.train_cfg["lrSchedule"]))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        start = self._draws_before(step_number)
        draws = range(start, start + self.batch_size) if self.dist is None else self.dist.shard(start, self.batch_size)
        pairs = [self.train_pairs[self.sampler.index(d)] for d in draws]
        batch = self.augment(self.data.load_batch(pairs, self.device, labels="one-hot" if self.loss_uses_labels else "none"), list(draws))
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            out = self._forward(batch, self.ddp)
            total, terms = self.loss_fn(out, self._loss_batch(batch))
        if not torch.isfinite(total.detach()).all():
            bad = [k for k, v in _float_terms(terms).items() if not math.isfinite(v)]
            names = f" (non-finite terms: {', '.join(bad)})" if bad else ""
            pair_names = ", ".join(f"{p.moving}->{p.fixed}" for p in pairs)
            raise NonFiniteLoss(f"loss is {float(total.detach().float())} at step {step_number}{names}, pair {pair_names}; training stopped, the last good checkpoint is kept")
        if self.scaler is not None and self.scaler.is_enabled():
            self.scaler.scale(total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            self.optimizer.step()
        loss, named = float(total.detach().float()), _float_terms(terms)
        if self.dist is not None:  # distributed: report the mean over the global batch, not rank 0's share
            loss, named = self.dist.mean_over_ranks(loss, named)
        return loss, named

    @torch.no_grad()
    def validate(self, identity: bool = False) -> dict | None:
        """Mean Dice over the validation pairs (labels warped with nearest by the final field), or the
        mean validation loss when the pairs have no labels. ``identity`` scores the unregistered pairs
        (zero field) instead: the baseline every later validation is read against.

        Beside the selection metric it reports ``fieldMagnitude`` (mean ‖u‖ over the grid, voxels) and,
        where the pairs carry their true field, ``epe`` (mean endpoint error in mm over the fixed labels'
        foreground, the ``endpoint-error`` metric's definition). Nearest-neighbour Dice does not move until
        displacements pass half a voxel, so these two show learning that Dice cannot see yet."""
        from .nn import warp

        if not self.val_list or not self.is_main:  # distributed: rank 0 validates
            return None
        self.model.eval()
        dices, losses, magnitudes, epes = [], [], [], []
        labels = [v for v in self.data.labels if v != 0]
        for pair in self.val_list:
            batch = self.data.load_batch([pair], self.device, labels="one-hot" if self.loss_uses_labels else "map")
            truth = self.data.true_field(pair, self.device)
            if identity:
                if not (labels and "moving_label_map" in batch) and truth is None:
                    continue
                field = torch.zeros((1, 3, *batch["moving"].shape[2:]), device=self.device)
            else:
                with self._autocast():
                    out = self._forward(batch)
                field = out["fields"][-1].float()
            magnitudes.append(float(field.norm(dim=1).mean()))
            if truth is not None:
                mm = torch.tensor(self.data.spacing(pair.fixed), device=self.device).view(1, 3, 1, 1, 1)
                error = ((field - truth) * mm).norm(dim=1)
                region = batch["fixed_label_map"][:, 0] > 0 if "fixed_label_map" in batch else torch.ones_like(error, dtype=torch.bool)
                epes.append(float(error[region].mean()))
            if labels and "moving_label_map" in batch:
                # Nearest-neighbour warping of the label map reads the same voxel as warping its one-hot
                # channels, at 1/L of the memory.
                warped = warp(batch["moving_label_map"].float(), field, mode="nearest").round().to(torch.int32)
                scores = [s for s in dice_per_label(warped, batch["fixed_label_map"], labels) if not math.isnan(s)]
                if scores:
                    dices.append(sum(scores) / len(scores))
            elif not identity:
                with self._autocast():
                    total, _ = self.loss_fn(out, self._loss_batch(batch))
                losses.append(float(total.float()))
        self.model.train()
        extra = {"fieldMagnitude": sum(magnitudes) / len(magnitudes)} if magnitudes else {}
        if epes:
            extra["epe"] = sum(epes) / len(epes)
        if dices:
            return {"metric": "dice", "value": sum(dices) / len(dices), "pairs": len(dices), "higherIsBetter": True, **extra}
        if losses:
            return {"metric": "loss", "value": sum(losses) / len(losses), "pairs": len(losses), "higherIsBetter": False, **extra}
        if extra:  # identity of label-free pairs with true fields: no selection metric, only the field numbers
            return {"metric": "epe", "value": extra.get("epe"), "pairs": len(magnitudes), "higherIsBetter": False, **extra}
        return None

    def _save(self, tag: str, with_optimizer: bool) -> None:
        phase = self.phases[self.phase_pos]
        if not self.is_main:  # distributed: rank 0 writes the checkpoints
            if tag == "last":
                self._last_saved_step = self.step
            return
        state = {
            "phase": phase.index,
            "schedule": self.schedule,
            "total": self.total,
            "best": self.best,
            "seed": self.seed,
            "dataset": self.data.fingerprint(),
            "preparedDir": str(self.prepared_dir),
            "device": str(self.device),
            "amp": self._status.get("amp"),
            "samplesSeen": self._draws_before(self.step + 1),
            "worldSize": self.world_size,
        }
        paths = save_checkpoint(
            self.ckpt_dir,
            tag,
            model=self.model,
            base_names=self.base_names,
            base_sha256=self.base_sha,
            step=self.step,
            state=state,
            optimizer=self.optimizer if with_optimizer else None,
            scaler=self.scaler if with_optimizer else None,
        )
        if tag == "last":
            self._last_saved_step = self.step
        # relative to the run folder, so a log names no machine path and a moved run folder still reads right
        self._event("checkpoint", which=tag, step=self.step, phase=phase.index, path=os.path.relpath(paths["tensors"], self.run_dir))

    def _finish_stopped(self, reason: str, message: str) -> None:
        if self._last_saved_step != self.step:
            self._save("last", with_optimizer=True)
        self._update(state="stopped", reason=reason, message=message, elapsed_s=round(time.time() - self._started, 3), eta_s=None)
        self._event("stopped", reason=reason, message=message, step=self.step, **peak_memory(self.device))

    def _loop(self) -> None:
        resuming = self._resume_record is not None
        pos = self._phase_index_for(self.step)
        if self.step >= self.total:
            self._update(state="done", message="nothing to do: the run had already finished")
            self._event("done", step=self.step, best=self.best, message="already finished")
            return
        self._enter_phase(pos, resuming)
        if not resuming and self.step == 0:
            base = self.validate(identity=True)
            if base is not None:
                if base["metric"] == "dice":
                    self._update(initial_dice=base["value"])
                self._event(
                    "val", step=0, phase=self.phases[pos].index, identity=True, **{base["metric"]: base["value"]}, pairs=base["pairs"], **{k: base[k] for k in ("epe", "fieldMagnitude") if k in base}
                )
        session_start, session_start_step = time.time(), self.step
        rate: float | None = None
        last_time = time.time()
        while self.step < self.total:
            requested = self._stop.is_set()
            # The budget is checked after each step (at least one step runs, so a stop always saves progress).
            over_budget = self.time_budget_s is not None and self.step > session_start_step and time.time() - session_start >= self.time_budget_s
            if self.dist is not None:  # distributed: every rank stops after the same step
                requested, over_budget = self.dist.any_rank(requested, over_budget)
            if requested:
                self._finish_stopped("requested", f"stopped on request after step {self.step}; checkpoints/last saved")
                return
            if over_budget:
                minutes = self.time_budget_s / 60
                self._finish_stopped("time-budget", f"time budget of {minutes:g} min used up after step {self.step} of {self.total}; checkpoints/last saved (resume to continue)")
                return
            if self.step >= self.phases[self.phase_pos].end:
                self._enter_phase(self.phase_pos + 1, resuming=False)
            self._take_threads_request()

            loss, terms = self._train_step(self.step + 1)
            self.step += 1
            now = time.time()
            dt = max(now - last_time, 1e-9)
            last_time = now
            rate = 1.0 / dt if rate is None else 0.9 * rate + 0.1 / dt
            self._update(step=self.step, loss=loss, terms=terms, it_s=round(rate, 4), eta_s=round((self.total - self.step) / rate, 1) if rate > 0 else None, elapsed_s=round(now - self._started, 3))
            if self.step % self.log_every == 0 or self.step == self.total:
                self._event("step", step=self.step, phase=self.phases[self.phase_pos].index, loss=loss, terms=terms, it_s=round(rate, 4))

            phase_end = self.step == self.phases[self.phase_pos].end
            if self.step % self.validate_every == 0 or self.step == self.total or phase_end:
                result = self.validate()
                if result is not None:
                    dice = result["value"] if result["metric"] == "dice" else None
                    self._event(
                        "val",
                        step=self.step,
                        phase=self.phases[self.phase_pos].index,
                        **{result["metric"]: result["value"]},
                        pairs=result["pairs"],
                        **{k: result[k] for k in ("epe", "fieldMagnitude") if k in result},
                    )
                    better = (
                        self.best is None or self.best.get("metric") != result["metric"] or (result["value"] > self.best["value"] if result["higherIsBetter"] else result["value"] < self.best["value"])
                    )
                    if better:
                        self.best = {"metric": result["metric"], "value": result["value"], "step": self.step, "phase": self.phases[self.phase_pos].index}
                        self._save("best", with_optimizer=False)
                    self._update(val_dice=dice, best=self.best)
            if self.step % self.checkpoint_every == 0 or self.step == self.total or phase_end:
                self._save("last", with_optimizer=True)

        elapsed = time.time() - session_start
        message = f"trained {self.step - session_start_step} steps in {elapsed:.1f} s"
        self._update(state="done", eta_s=0, message=message, elapsed_s=round(time.time() - self._started, 3))
        self._event("done", step=self.step, best=self.best, elapsed_s=round(elapsed, 3), **peak_memory(self.device))


def read_run_json(run_dir: str | os.PathLike[str], name: str) -> dict:
    """``spec.json`` / ``config.json`` of a run folder as a dict; a missing or unreadable one is a CheckpointError naming it."""
    path = Path(run_dir) / name
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"run folder lacks {name}", where=str(run_dir), hint="name a run folder written by `llmed train` (runs/<experiment>/<timestamp>)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise CheckpointError(f"{name} of the run is not valid JSON ({type(err).__name__}: {err})", where=str(path)) from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{name} of the run is not a JSON object", where=str(path))
    return value


def load_run_model(
    run_dir: str | os.PathLike[str], tag: str = "best", device: str | torch.device = "cpu", model_factory: ModelFactory | None = None, workspace_root: str | None = None, plugins: dict | None = None
) -> tuple[nn.Module, dict]:
    """Rebuild a run's model from its own spec.json/config.json (seeded as in training) and load
    checkpoint ``tag``; for export and evaluation. Returns ``(model in eval mode, checkpoint record)``.

    ``plugins`` (plugin id -> python entry, from the workspace's registry) says where each node's code is;
    the spec.json of a run folder only names plugins by id and its paths are never imported from, so
    without a ``model_factory`` the table is required."""
    run_dir = Path(run_dir)
    spec = read_run_json(run_dir, "spec.json")
    config = read_run_json(run_dir, "config.json")
    if model_factory is None and plugins is None:
        raise CheckpointError(
            "building a run folder's model needs the registered plugins (plugins=..., id -> python entry); the paths in its spec.json are never imported from", where=str(run_dir / "spec.json")
        )
    record = read_checkpoint_record(run_dir / "checkpoints", tag)
    # Loading weights needs no augmentation or lr settings, and run folders written before train.augment and
    # train.lrSchedule existed lack them.
    train_cfg = train_section({**config, "train": {"augment": {}, "lrSchedule": "constant", "warmup": 0, **config.get("train", {})}})
    seed_everything(int(train_cfg["seed"]))
    model = (model_factory or (lambda s: default_model_factory(s, workspace_root, plugins)))(spec).to(device)
    schedule, phases = plan_phases(train_cfg)
    names = base_weight_names(model, schedule, phases)
    if schedule is not None and hasattr(model, "freeze_for_step"):
        model.freeze_for_step(int(record.get("phase", 1)), schedule)
    load_checkpoint(run_dir / "checkpoints", tag, model=model, base_names=names, base_sha256=base_fingerprint(model, names), map_location=device)
    return model.eval(), record
