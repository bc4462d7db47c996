"""A torchrun entry for the distributed tests: ``llmed.distributed.run_worker`` with the toy network of
test_train_engine.py (or the real assembly), plus what the tests need to observe a rank from outside.

    python -m torch.distributed.run --nproc-per-node 2 tests/dist_toy_worker.py <run> <spec.json> <config.json> <prepared> <options.json>

Options read here (and removed before the trainer sees them): ``toySteps`` (cascade heads of the toy
network; absent: the real model from the spec), ``auditDir`` (every rank records each file it opens for
writing, renames or removes under the run folder to ``<auditDir>/rank-<r>.txt``, through a Python audit
hook). ``raiseAtStep`` + ``raiseOnRank`` make that rank's training step raise (:class:`RaisingTrainer`,
which the TypeScript tests also name as ``options.trainer = "dist_toy_worker:RaisingTrainer"``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmed.distributed import run_worker  # noqa: E402
from llmed.train import Trainer  # noqa: E402


def install_write_audit(run_dir: str, out_file: Path) -> None:
    root = str(Path(run_dir).resolve())
    log = open(out_file, "a", buffering=1)

    def hook(event: str, args: tuple) -> None:
        path = None
        if event == "open" and args and isinstance(args[0], (str, os.PathLike)):
            mode, flags = (args[1] or ""), (args[2] if len(args) > 2 and isinstance(args[2], int) else 0)
            if any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                path = args[0]
        elif event in ("os.rename", "os.replace", "os.remove", "os.unlink", "os.mkdir", "shutil.rmtree"):
            path = args[0] if args else None
        if path is not None and os.path.abspath(os.fspath(path)).startswith(root):
            log.write(f"{event} {os.fspath(path)}\n")

    sys.addaudithook(hook)


class RaisingTrainer(Trainer):
    """The real trainer, whose step ``options.raiseAtStep`` raises on rank ``options.raiseOnRank``."""

    def __init__(self, run_dir, spec, config, prepared_dir, options=None, **kwargs):
        options = dict(options or {})
        self.raise_at = int(options.pop("raiseAtStep", -1))
        self.raise_on = int(options.pop("raiseOnRank", -1))
        super().__init__(run_dir, spec, config, prepared_dir, options, **kwargs)

    def _train_step(self, step_number: int):
        if step_number == self.raise_at and self.dist is not None and self.dist.rank == self.raise_on:
            raise ValueError(f"toy failure on purpose at step {step_number}")
        return super()._train_step(step_number)


def main() -> int:
    run_dir, spec_path, config_path, prepared, options_path = sys.argv[1:6]
    options = json.loads(Path(options_path).read_text())
    toy_steps = options.pop("toySteps", None)
    audit = options.pop("auditDir", None)
    if audit:
        install_write_audit(run_dir, Path(audit) / f"rank-{os.environ['RANK']}.txt")

    def factory(run_dir, spec, config, prepared_dir, options, distributed):
        extra = {}
        if toy_steps is not None:
            from test_train_engine import ToyRegNet, toy_loss

            extra = {"model_factory": lambda s: ToyRegNet(int(toy_steps)), "loss_factory": lambda s: toy_loss}
        return RaisingTrainer(run_dir, spec, config, prepared_dir, options, distributed=distributed, **extra)

    return run_worker(run_dir, spec_path, config_path, prepared, options, trainer_factory=factory)


if __name__ == "__main__":
    sys.exit(main())
