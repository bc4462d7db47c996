"""Training on several processes: PyTorch's own ``torchrun`` and ``DistributedDataParallel``.

``llmed train <experiment> --nproc-per-node N`` (TypeScript: bridge/src/distributed.ts) starts

    python -m torch.distributed.run --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P]
           -m llmed.distributed <run_dir> <spec.json> <config.json> <prepared_dir> <options.json>

and each of the N x M processes runs :func:`main`: it joins the process group (NCCL on CUDA, gloo on CPU),
builds the trainer of the run and trains. Nothing here is llmed's own distribution: torchrun starts,
watches and stops the processes, DDP averages the gradients. What llmed adds are the hooks the trainer
needs to run as one of many (``Trainer(..., distributed=DistributedContext)`` in train.py):

* **DDP over the trainable modules only.** The base weights (the frozen pretrained LLM layers, see
  checkpoint.py) are excluded from DDP (``_set_params_and_buffers_to_ignore_for_model``): they are neither
  broadcast nor all-reduced. Every rank builds them from the same files and seed; a SHA-256 of them is
  compared across ranks before training, so a rank with other LLM weights fails at once. Each cascade phase
  wraps the model anew (DDP fixes its set of gradient-carrying parameters at construction), which also
  broadcasts rank 0's weights - the phase may have started from rank 0's best checkpoint.
* **Sharding.** Step ``s`` uses the global batch of draws ``[d_s, d_s + B*W)`` of the trainer's seeded pair
  sampler (``B`` = ``train.batchSize`` per process, ``W`` = world size); rank ``r`` takes the ``r``-th block of
  ``B``. So ``W`` processes with batch ``B`` see exactly the pairs one process with batch ``B*W`` sees, and DDP's
  gradient mean equals that process's batch mean (the losses average over the batch). The number of draws
  used so far is stored in the checkpoint, so a resume with another world size continues with the next
  unseen pairs. Ranks other than 0 reseed their RNGs with ``seed + rank`` after the model is built (the model
  itself is built from the shared seed), so random augmentation or dropout differ per rank.
* **Rank 0 writes, the others only compute.** log.jsonl, status.json, checkpoints and validation are rank 0's;
  the other ranks skip validation and never open a file in the run folder for writing.
* **Stop together.** Every step the ranks all-reduce two flags (stop requested, time budget used up), so all
  finish the same step; rank 0 then saves ``checkpoints/last``. A stop is requested by creating
  ``<run>/stop-request`` (TypeScript does that on Ctrl-C); rank 0 removes it.

How TypeScript follows the run
------------------------------
Training runs in a thread of each process (as under pythonia); the main thread of rank 0 writes the
trainer's status to ``<run>/status.json`` (atomically, on every change, at most every ``STATUS_EVERY_S``)
and TypeScript polls that file and tails log.jsonl - progress comes from rank 0 only. A rank whose run
ends in an error writes ``{rank, kind, message, traceback, peer, time}`` to ``$LLMED_RANK_ERROR_DIR/rank-<r>.json``
(a temporary folder of the launching node, never the run folder) and exits with code 1; torchrun then
stops the other ranks and TypeScript names the first rank that failed by itself (``peer: false``), rather
than one that only lost its peers. A rank killed by a signal writes nothing: TypeScript reads it from
torchrun's failure summary. Each rank also exits when torchrun (its parent) or the launching Node process
(``$LLMED_PARENT_PID``) disappears, so ``kill -9`` of anything in the chain ends the whole job.

The trainer class is named by ``options.trainer`` (``module:Class``, default ``llmed.train:Trainer``): the
launcher knows nothing about registration, so a report-generation trainer with the same contract
(constructor ``(run_dir, spec, config, prepared_dir, options, distributed=...)``, ``start``, ``alive``,
``status``, ``stop``) runs under it unchanged.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

from .atomic import atomic_write_json

RANK_ERROR_DIR_ENV = "LLMED_RANK_ERROR_DIR"
PARENT_PID_ENV = "LLMED_PARENT_PID"
STATUS_FILE = "status.json"
STOP_FILE = "stop-request"
STATUS_EVERY_S = 0.5
DEFAULT_TRAINER = "llmed.train:Trainer"


class DistributedError(Exception):
    """A job that cannot run as asked (llmed error kind 'config'), with what to do about it."""

    kind = "config"

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def _is_peer_failure(message: str, tb: str | None = None) -> bool:
    """Whether an error only says that another rank went away (the consequence, not the cause): a
    communication error of gloo/NCCL/the rendezvous store, or any error raised inside a collective."""
    markers = (
        "DistBackendError",
        "DistNetworkError",
        "DistStoreError",
        "Connection closed by peer",
        "Connection reset by peer",
        "Broken pipe",
        "gloo/transport",
        "NCCL communicator was aborted",
        "NCCL error",
        "ProcessGroupGloo",
        "ProcessGroupNCCL",
        "Socket Timeout",
    )
    last_frame = (tb or "").strip().split("\n  File ")[-1]
    return any(m in message for m in markers) or "distributed_c10d.py" in last_frame


class DistributedContext:
    """This process's place in a torchrun job and the few collective operations the trainer needs."""

    def __init__(self, rank: int, world_size: int, local_rank: int, backend: str, device: torch.device):
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.backend = backend
        self.device = device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device_choice: str | None, timeout_minutes: float = 30.0) -> DistributedContext:
        """Join the process group torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT."""
        missing = [k for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise DistributedError(f"not started by torchrun: {', '.join(missing)} not set", hint="use `llmed train <experiment> --nproc-per-node N`, or python -m torch.distributed.run")
        rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
        choice = (device_choice or "auto").lower()
        use_cuda = choice.startswith("cuda") or (choice == "auto" and torch.cuda.is_available())
        if use_cuda:
            if not torch.cuda.is_available():
                raise DistributedError("device 'cuda' was asked for, but torch sees no CUDA GPU (use --device cpu or auto)")
            if local >= torch.cuda.device_count():
                raise DistributedError(f"local rank {local} has no GPU: this node has {torch.cuda.device_count()}", hint="--nproc-per-node must not exceed the GPUs per node")
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
            backend = "nccl"
        else:
            device = torch.device("cpu")
            backend = "gloo"
        init = dict(backend=backend, rank=rank, world_size=world, timeout=timedelta(minutes=timeout_minutes))
        if backend == "nccl":
            init["device_id"] = device
        dist.init_process_group(**init)
        return cls(rank, world, local, backend, device)

    # ---- collectives ---------------------------------------------------------------------------------

    def any_rank(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag true on any rank (one small all-reduce)."""
        t = torch.tensor([1.0 if f else 0.0 for f in flags], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return tuple(bool(v) for v in t.tolist())

    def mean_over_ranks(self, loss: float, terms: dict[str, float]) -> tuple[float, dict[str, float]]:
        """The loss and its terms averaged over the ranks (each rank's are means over its equal share)."""
        names = sorted(terms)
        t = torch.tensor([loss, *(terms[n] for n in names)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        values = (t / self.world_size).tolist()
        return values[0], dict(zip(names, values[1:]))

    def check_same_base_weights(self, sha256_hex: str, count: int) -> None:
        """Fail on every rank when the ranks built different frozen base weights (DDP does not sync them)."""
        mine = torch.tensor([int(sha256_hex[:15], 16), count], dtype=torch.int64, device=self.device)
        low, high = mine.clone(), mine.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        if not torch.equal(low, high):
            raise DistributedError(f"rank {self.rank}: the frozen base weights (LLM layers) differ between ranks", hint="every node must read the same LLM checkpoint folder (same files, same spec)")

    # ---- the trainer's hooks ------------------------------------------------------------------------

    def wrap(self, model: nn.Module, base_names: Sequence[str], previous: nn.Module | None = None) -> nn.Module:
        """DDP over ``model``'s trainable parameters, the base weights left out (see the module doc)."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        del previous
        gc.collect()  # the previous phase's reducer removes its autograd hooks when it is freed
        DDP._set_params_and_buffers_to_ignore_for_model(model, list(base_names))
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(model, device_ids=ids, output_device=ids[0] if ids else None)

    def shard(self, draw_start: int, batch_size: int) -> list[int]:
        """Draw indices of this rank's part of the global batch that starts at ``draw_start``."""
        first = draw_start + self.rank * batch_size
        return list(range(first, first + batch_size))

    def rank_seed(self, seed: int, step: int) -> int:
        """Seed of a rank other than 0 from ``step`` on (rank 0 keeps the stream a single process has)."""
        return int(seed) + 1_000_003 * self.rank + int(step)

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


# ---- the worker ------------------------------------------------------------------------------------------


def load_trainer_class(name: str):
    module_name, _, attr = name.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr or "Trainer")
    except (ImportError, AttributeError) as err:
        raise DistributedError(f"trainer {name!r} cannot be loaded: {err}") from None


class _Watchdog:
    """Ends this process when torchrun (the parent) or the launching Node process is gone."""

    def __init__(self) -> None:
        self.parent = os.getppid()
        pid = os.environ.get(PARENT_PID_ENV)
        self.launcher = int(pid) if pid and pid.isdigit() else None

    def orphaned(self) -> str | None:
        if os.getppid() != self.parent:
            return "torchrun (the parent process) is gone"
        if self.launcher is not None:
            try:
                os.kill(self.launcher, 0)
            except ProcessLookupError:
                return f"the launching process {self.launcher} is gone"
            except PermissionError:
                pass
        return None


def write_rank_error(ctx_rank: int, local_rank: int, status: dict) -> None:
    folder = os.environ.get(RANK_ERROR_DIR_ENV)
    if not folder:
        return
    message = str(status.get("message") or "failed without a message")
    record = {
        "rank": ctx_rank,
        "localRank": local_rank,
        "pid": os.getpid(),
        "kind": status.get("kind") or "bridge",
        "message": message,
        "where": status.get("where"),
        "hint": status.get("hint"),
        "traceback": status.get("traceback"),
        "peer": _is_peer_failure(message, status.get("traceback")),
        "time": time.time(),
    }
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(folder) / f"rank-{ctx_rank}.json", record)
    except OSError:
        pass


def run_worker(run_dir: str, spec_path: str, config_path: str, prepared_dir: str, options: dict, *, trainer_factory: Any = None) -> int:
    """One rank of a torchrun job: train, follow the trainer from the main thread, return the exit code.
    ``trainer_factory(run_dir, spec, config, prepared_dir, options, distributed=ctx)`` replaces the class
    named by ``options.trainer`` (tests pass toy models this way)."""
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    watchdog = _Watchdog()
    ctx: DistributedContext | None = None
    try:
        ctx = DistributedContext.from_environment(options.get("device"), float(options.get("distTimeoutMinutes", 30)))
        spec = json.loads(Path(spec_path).read_text())
        config = json.loads(Path(config_path).read_text())
        if ctx.device.type == "cuda":
            options = {**options, "device": str(ctx.device)}
        factory = trainer_factory or load_trainer_class(str(options.get("trainer") or DEFAULT_TRAINER))
        trainer = factory(run_dir, spec, config, prepared_dir, options, distributed=ctx)
    except Exception as err:
        message = str(err) or type(err).__name__
        status = {
            "kind": getattr(err, "kind", "bridge") if isinstance(getattr(err, "kind", None), str) else "bridge",
            "message": message if isinstance(err, DistributedError) else f"{type(err).__name__}: {message}",
            "hint": getattr(err, "hint", None),
            "traceback": traceback.format_exc(),
        }
        write_rank_error(rank, local_rank, status)
        sys.stderr.write(f"llmed rank {rank}: {status['message']}\n")
        sys.stderr.flush()
        os._exit(1)

    status_path = Path(run_dir) / STATUS_FILE
    stop_path = Path(run_dir) / STOP_FILE
    if ctx.is_main:  # status.json may be written before the trainer's thread has made the folder
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    trainer.start()
    last_text, last_write = "", 0.0
    while True:
        alive = trainer.alive
        status = trainer.status()
        if ctx.is_main:
            if stop_path.exists():
                trainer.stop()
                try:
                    stop_path.unlink()
                except FileNotFoundError:
                    pass
            status.update(rank=0, world_size=ctx.world_size, backend=ctx.backend)
            text = json.dumps({k: v for k, v in status.items() if k != "elapsed_s"}, sort_keys=True)
            now = time.time()
            if text != last_text and (now - last_write >= STATUS_EVERY_S or not alive):
                try:
                    atomic_write_json(status_path, status)
                    last_text, last_write = text, now
                except OSError as err:  # a full or vanished disk: the trainer reports it; try again later
                    sys.stderr.write(f"llmed rank 0: cannot write {status_path}: {err}\n")
        if not alive:
            break
        gone = watchdog.orphaned()
        if gone:
            sys.stderr.write(f"llmed rank {rank}: {gone}; stopping\n")
            sys.stderr.flush()
            os._exit(1)
        time.sleep(0.1)

    if status.get("state") == "error":
        write_rank_error(rank, local_rank, status)
        sys.stderr.write(f"llmed rank {rank}: {status.get('message')}\n")
        sys.stderr.flush()
        # No destroy_process_group: with a peer gone it can block; torchrun ends the others.
        os._exit(1)
    ctx.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    from .quiet import quiet_libraries

    quiet_libraries()
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 5:
        sys.stderr.write("usage: python -m torch.distributed.run ... -m llmed.distributed <run_dir> <spec.json> <config.json> <prepared_dir> <options.json>\n")
        return 2
    run_dir, spec_path, config_path, prepared_dir, options_path = args
    options = json.loads(Path(options_path).read_text())
    return run_worker(run_dir, spec_path, config_path, prepared_dir, options)


if __name__ == "__main__":
    sys.exit(main())
