"""Transfer from 3BPA to acetylacetone: from scratch, naive fine-tuning, multihead replay, LoRA and Tucker adapters
at the same wall-clock budget, with the forgetting of 3BPA after each.

    python benchmarks/transfer_acac.py --pretrained runs/3bpa/model.pt --out runs/transfer [--minutes 4]
        [--threads 1] [--methods scratch,naive,replay,lora,tucker]

``--pretrained``: an mlip model trained on 3BPA (``python train.py --config configs/3bpa_mace.yaml``, which
validates on the last 50 frames of ``3bpa/train_300K.xyz``). Every method trains on the first 50 frames of
``acac/train_300K.xyz`` (validation, for EMA and the scheduler only: its last 50 frames), with the E0s of
``acac/isolated_atoms.xyz`` (acac is PBE+D3/def2-SVP, 3BPA ωB97X/6-31G(d): another level of theory), for
``--minutes`` of training each (``train.max_time``), one after the other, each with ``--threads`` torch threads.
``lora`` and ``tucker`` train the readouts in full beside the adapters (the default of ``train.adapter.trainable``);
``lora-only`` and ``tucker-only`` train the adapters alone; ``tucker-all`` puts Tucker cores on the channel-mixing
matrices as well (a matrix is the order-2 case), with the readouts trained.
The fine-tuning methods start from ``--pretrained`` and re-fit its E0s to the new data before the first step
(``train.init_refit_e0s``); from scratch uses the pretrained model's architecture. Multihead replay replays the
first 450 frames of ``3bpa/train_300K.xyz`` (the pretraining training frames) on the pretraining head.

Scores (``mlip-eval``'s metrics): acac ``test_MD_300K.xyz`` (650 frames) with the fine-tuned model; 3BPA's
validation frames with the fine-tuned model (and, for replay, with the replay head, ``model_replay_head.pt``),
which measures forgetting. The from-scratch model knows no nitrogen and is not scored on 3BPA. Energies of the
fine-tuned models on 3BPA are in acac's references (another functional), so only their force errors compare.
Results go to ``OUT/results.json`` and ``OUT/table.md`` after every method (written atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

METHODS = ("scratch", "naive", "replay", "lora", "tucker", "lora-only", "tucker-only", "tucker-all")


def _train_config(
    method: str, pretrained: Path, arch: dict, out: Path, minutes: int, lr: float, rank: int
) -> dict:
    data = {
        "train_file": str(out / "acac_first50.xyz"),
        "valid_file": str(out / "acac_valid.xyz"),
        "e0_file": str(DATA / "acac" / "isolated_atoms.xyz"),
        "e0s": "isolated",
        "batch_size": 5,
        "valid_batch_size": 25,
    }
    train = {
        "lr": lr,
        "energy_weight": 1.0,
        "forces_weight": 100.0,
        "ema_decay": 0.99,
        "dtype": "float32",
        "max_epochs": 1000000,
        "max_time": f"00:00:{minutes:02d}:00",
        "progress_bar": False,
        "refit_e0s": "end",
    }
    if method == "scratch":
        model = {k: v for k, v in arch.items() if k not in ("atomic_numbers", "atomic_energies", "avg_num_neighbors",
                                                              "scale", "shift", "dtype")}  # fmt: skip
        return {"model": model, "data": data, "train": train}
    train.update(init_from=str(pretrained), init_refit_e0s=True)
    if method == "replay":
        data.update(replay_file=str(out / "3bpa_replay.xyz"), replay_batch_size=5)
    if method in ("lora", "tucker"):  # adapters, and the readouts trained in full (the default)
        train["adapter"] = {"kind": method, "rank": rank}
    if method in ("lora-only", "tucker-only"):  # adapters alone: every base weight frozen, readouts too
        train["adapter"] = {"kind": method.split("-")[0], "rank": rank, "trainable": []}
    if method == "tucker-all":  # Tucker cores on the channel-mixing matrices too (N = 2), as FLoRA does
        from mlip.models.adapters import DEFAULT_TARGETS, AdapterKind

        targets = [t for k in AdapterKind for t in DEFAULT_TARGETS[k] if not t.startswith("mixers.")]  # MACE
        train["adapter"] = {"kind": "tucker", "rank": rank, "targets": targets}
    return {"model": {"name": arch["name"]}, "data": data, "train": train}


def _evaluate(model: Path, files: dict[str, Path]) -> dict:
    from mlip.cli.eval import score_file
    from mlip.data import read_frames, split_isolated_atoms
    from mlip.models import load_model

    m = load_model(model)
    out = {}
    for name, path in files.items():
        frames, _ = split_isolated_atoms(read_frames(path))
        metrics, failures, _ = score_file(frames, m, name, device="cpu", max_atoms=4096)
        out[name] = {k: metrics[k] for k in ("n_frames", "energy_rmse_mev_per_atom", "forces_rmse_mev_per_A")}
    return out


def _table(results: dict) -> str:
    rows = [
        "| method | trained params | epochs | acac test E RMSE (meV/atom) | acac test F RMSE (meV/Å) | "
        "3BPA valid F RMSE (meV/Å) | 3BPA valid E RMSE, replay head (meV/atom) |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, r in results.items():
        acac = r["scores"]["acac_test"]
        bpa = r["scores"].get("3bpa_valid")
        head = r["scores"].get("3bpa_valid_replay_head")
        f3 = f"{bpa['forces_rmse_mev_per_A']:.1f}" if bpa else "n/a"
        if head:
            f3 += f" (replay head {head['forces_rmse_mev_per_A']:.1f})"
        e3 = f"{head['energy_rmse_mev_per_atom']:.2f}" if head else "-"
        rows.append(
            f"| {method} | {r.get('trainable', '-')} | {r.get('epochs', '-')} | {acac['energy_rmse_mev_per_atom']:.2f} | "
            f"{acac['forces_rmse_mev_per_A']:.1f} | {f3} | {e3} |"
        )
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pretrained", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--minutes", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--methods", default=",".join(METHODS))
    args = p.parse_args(argv)
    from mlip.fileio import write_json_atomic, write_text_atomic
    from mlip.models.io import read_model_file

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    acac = ase.io.read(DATA / "acac" / "train_300K.xyz", ":")
    ase.io.write(out / "acac_first50.xyz", acac[:50], format="extxyz")
    ase.io.write(out / "acac_valid.xyz", acac[-50:], format="extxyz")
    bpa = ase.io.read(DATA / "3bpa" / "train_300K.xyz", ":")
    ase.io.write(out / "3bpa_replay.xyz", bpa[:450], format="extxyz")
    ase.io.write(out / "3bpa_valid.xyz", bpa[450:], format="extxyz")
    arch = read_model_file(args.pretrained)["config"]
    scores_files = {"acac_test": DATA / "acac" / "test_MD_300K.xyz", "3bpa_valid": out / "3bpa_valid.xyz"}
    results: dict = {}
    results_path = out / "results.json"
    if results_path.is_file():
        results = json.loads(results_path.read_text())
    results.setdefault("pretrained (no fine-tuning)", {"scores": _evaluate(args.pretrained, scores_files)})
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    for method in args.methods.split(","):
        if method in results:
            continue
        run = out / method
        cfg_path = out / f"{method}.yaml"
        cfg = _train_config(method, args.pretrained.resolve(), arch, out, args.minutes, args.lr, args.rank)
        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        t0 = time.perf_counter()
        with open(out / f"{method}.log", "w") as log:
            subprocess.run(
                [sys.executable, str(ROOT / "train.py"), "--config", str(cfg_path), "--run-dir", str(run)],
                check=True, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wall = time.perf_counter() - t0
        files = dict(scores_files)
        if method == "scratch":
            files.pop("3bpa_valid")  # no nitrogen in acac
        scores = _evaluate(run / "model.pt", files)
        if method == "replay":
            scores["3bpa_valid_replay_head"] = _evaluate(
                run / "model_replay_head.pt", {"x": out / "3bpa_valid.xyz"}
            )["x"]
        metrics = json.loads((run / "metrics.json").read_text())
        hist = (run / "logs" / "metrics.csv").read_text().splitlines()
        epochs = (
            max((int(float(line.split(",")[0])) for line in hist[1:] if line.split(",")[0]), default=-1) + 1
        )
        results[method] = {
            "scores": scores,
            "trainable": metrics["parameters"]["trainable"],
            "total": metrics["parameters"]["total"],
            "epochs": epochs,
            "wall_s": round(wall, 1),
        }
        write_json_atomic(results_path, results)
        write_text_atomic(out / "table.md", _table(results))
        print(f"{method}: {scores} ({wall:.0f} s)", flush=True)
    write_json_atomic(results_path, results)
    write_text_atomic(out / "table.md", _table(results))
    print(_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
