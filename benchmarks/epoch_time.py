"""Seconds per training epoch of a config, measured inside ``train.py``'s own code path.

    python benchmarks/epoch_time.py --config configs/3bpa_mace.yaml [--epochs 5] [--threads 1]

Runs ``mlip.training.run.run_training`` for ``--epochs`` epochs in a fresh temporary run directory, with a
Lightning callback that times every epoch (training and validation together, as ``train.max_time`` counts it),
and prints each epoch and the median of all but the first (which includes the first graphs' warm-up). Uses only
``run_training`` and the trainer factory (``mlip.training.trainer.build_trainer``, or ``run._trainer`` before
issue 34), so the same script measures an older checkout (``PYTHONPATH=old/checkout``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from lightning.pytorch.callbacks import Callback

    import mlip.training.run as run
    from mlip.training.config import RunConfig

    raw = yaml.safe_load(Path(args.config).read_text())
    raw.setdefault("train", {}).update(max_epochs=args.epochs, max_time=None, progress_bar=False)
    cfg = RunConfig.from_dict(raw)

    times: list[float] = []

    class Timer(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            self.start = time.perf_counter()

        def on_validation_epoch_end(self, trainer, pl_module):
            times.append(time.perf_counter() - self.start)

    try:
        import mlip.training.trainer as owner

        name = "build_trainer"
    except ImportError:  # a checkout before issue 34
        owner, name = run, "_trainer"
    original = getattr(owner, name)

    def with_timer(c, d):
        trainer = original(c, d)
        trainer.callbacks.append(Timer())
        return trainer

    setattr(owner, name, with_timer)
    with tempfile.TemporaryDirectory() as tmp:
        run.run_training(cfg, Path(tmp) / "run")
    print(f"{args.config}: epochs {[round(t, 2) for t in times]} s")
    print(f"median s/epoch (epochs 2..{len(times)}): {statistics.median(times[1:]):.2f}")
    print(f"mlip from {Path(run.__file__).resolve().parents[2]}", file=sys.stderr)


if __name__ == "__main__":
    main()
