"""Kill a 2-process DDP training with SIGKILL midway, resume it, and compare with an uninterrupted run.

    python benchmarks/ddp_resume.py [--workdir /tmp/ddp_resume] [--epochs 8] [--kill-after-epoch 3]

Data: a synthetic MPtrj-layout set (the sample's 11 frames copied 30 times with perturbed positions, 330 frames),
preprocessed into shards; model: an 8-channel MACE; training: 2 CPU processes (gloo), batches of 4 frames per
rank, constant learning rate, EMA. Run A trains uninterrupted. Run B is killed (SIGKILL to the whole process
group) once the checkpoint of epoch ``--kill-after-epoch`` exists, its last checkpoint is loaded to show that it
is intact, and the run is resumed with ``--resume``. The final validation errors of A and B are printed with
their relative difference.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "mptrj_sample" / "orb_mptrj_reconstructed.json"


def _config(data_dir: Path, epochs: int) -> dict:
    return {
        "model": {"name": "mace", "r_max": 5.0, "channels": 8, "max_ell": 2, "max_L": 1, "correlation": 2,
                  "radial_mlp": [16]},
        "data": {"train_file": str(data_dir), "valid_fraction": 0.1, "batch_size": 4, "valid_batch_size": 8},
        "train": {"max_epochs": epochs, "devices": 2, "strategy": "ddp", "scheduler": "none", "lr": 0.005,
                  "progress_bar": False, "ema_decay": 0.99, "stress_weight": 0.0},
    }  # fmt: skip


def _train(cfg_path: Path, run_dir: Path, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "--config",
        str(cfg_path),
        "--run-dir",
        str(run_dir),
        *extra,
    ]
    log = open(run_dir.with_suffix(".log"), "a")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="/tmp/ddp_resume")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--kill-after-epoch", type=int, default=3)
    args = p.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    from mlip.data.preprocess import preprocess
    from mlip.testing.synthetic import write_synthetic_mptrj

    data = work / "data"
    if not (data / "manifest.json").is_file():
        write_synthetic_mptrj(SAMPLE, work / "syn.json", copies=30, seed=0)
        preprocess([work / "syn.json"], data, shard_size=100)
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump(_config(data, args.epochs)))

    t = time.perf_counter()
    a = _train(cfg, work / "A")
    assert a.wait() == 0, "run A failed"
    print(f"A (uninterrupted): {time.perf_counter() - t:.0f} s", flush=True)

    b = _train(cfg, work / "B")
    last = work / "B" / "checkpoints" / "last.ckpt"
    while True:
        time.sleep(0.5)
        if b.poll() is not None:
            raise SystemExit("run B ended before it could be killed; raise --epochs")
        if last.is_file():
            try:
                epoch = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
            except Exception:  # being written: try again
                continue
            if epoch >= args.kill_after_epoch:
                break
    time.sleep(1.0)  # let it get into the next epoch
    os.killpg(b.pid, signal.SIGKILL)
    b.wait()
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    print(
        f"B killed with SIGKILL; last.ckpt intact: epoch {ckpt['epoch']}, global step {ckpt['global_step']}"
    )
    b = _train(cfg, work / "B", "--resume")
    assert b.wait() == 0, "resumed run B failed"
    ma = json.loads((work / "A" / "metrics.json").read_text())["valid"]
    mb = json.loads((work / "B" / "metrics.json").read_text())["valid"]
    final = torch.load(work / "B" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    print(f"B resumed and finished: epoch {final['epoch']}, global step {final['global_step']}")
    for key in ("energy_rmse_mev_per_atom", "forces_rmse_mev_per_A"):
        rel = abs(mb[key] - ma[key]) / ma[key]
        print(
            f"{key}: uninterrupted {ma[key]:.3f}, killed and resumed {mb[key]:.3f}, difference {100 * rel:.2f} %"
        )


if __name__ == "__main__":
    main()
