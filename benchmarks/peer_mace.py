"""Train mace-torch (the peer) on the same split as a ``train.py`` run, for a wall-clock budget, and record its
validation errors; the side-by-side half of the accuracy-per-compute comparisons.

Usage (mace-torch lives in its own virtual environment, ``../shared/peers/README.md``)::

    PEER_VENV=/tmp/peer python benchmarks/peer_mace.py DATA.extxyz --valid-last 20 --seconds 1200 \\
        --out runs/peer_mo [--iso ISO.xyz] [--stage-two-epoch K] [--calibrate] -- --num_channels 32 ...

The last ``--valid-last`` frames of ``DATA`` validate, the others train (mlip's ``data.valid_last``). Energies,
forces and stresses (where the frames have them; ``--stress-transform`` as the mlip config's
``data.stress_transform``) are written as ``REF_*``; E0s are the isolated atoms of ``--iso``
(``config_type=IsolatedAtom``) or, without it, mace-torch's least-squares ``average``. ``--stage-two-epoch K``
turns on mace-torch's stage two (``--swa``: energy weight 1000, forces 100, stress 10, lr 1e-3) from epoch ``K``;
mace-torch counts its stage in epochs, so ``--calibrate`` first runs a short trial (``--seconds`` long) and
prints the seconds per epoch, from which ``K = 0.75 · budget / (s/epoch)`` matches mlip's ``stage_two_start``.
The run is stopped by ``timeout`` at the budget; ``OUT/result.json`` holds the last validation line of its log
(energy RMSE meV/atom, force RMSE meV/Å, stress RMSE meV/Å³ where fitted), the epochs done and the seconds per
epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from ase.io import read, write

from mlip.data.stress_check import apply_stress_transform

# mace-torch's per-evaluation log line (PerAtomRMSEstressvirials table), e.g.
# "Epoch 12: head: Default, loss=0.0123, RMSE_E_per_atom=  12.3 meV, RMSE_F=  45.6 meV / A, RMSE_stress=  7.8 meV / A^3"
_LINE = re.compile(r"Epoch (\d+):.*?RMSE_E_per_atom=\s*([\d.eE+-]+)\s*meV,\s*RMSE_F=\s*([\d.eE+-]+)\s*meV")
_STRESS = re.compile(r"RMSE_stress(?:_per_atom)?=\s*([\d.eE+-]+)\s*meV")


def write_split(
    data: str, iso: str | None, valid_last: int, work: Path, stress_transform: str = "none"
) -> bool:
    """``train.xyz`` / ``valid.xyz`` with ``REF_`` labels in ``work``, stresses fixed by ``stress_transform``
    (mlip's ``data.stress_transform``); returns whether stresses are present."""

    def ref(frames, isolated=False):
        out, stress = [], True
        for a in frames:
            b = a.copy()
            b.calc = None
            b.info = {"REF_energy": a.get_potential_energy()}
            if isolated:
                b.info["config_type"] = "IsolatedAtom"
            else:
                b.arrays["REF_forces"] = a.get_forces()
                try:
                    b.info["REF_stress"] = apply_stress_transform(a.get_stress(voigt=False), stress_transform)
                except Exception:  # no stress in this frame
                    stress = False
            out.append(b)
        return out, stress

    frames = read(data, ":")
    train, s1 = ref(frames[:-valid_last])
    valid, s2 = ref(frames[-valid_last:])
    isolated = ref(read(iso, ":"), isolated=True)[0] if iso else []
    write(work / "train.xyz", isolated + train)
    write(work / "valid.xyz", valid)
    return s1 and s2


def parse_log(text: str) -> dict:
    """The last validation line of a mace-torch log, and the epochs logged."""
    rows = []
    for line in text.splitlines():
        m = _LINE.search(line)
        if m:
            s = _STRESS.search(line)
            rows.append(
                (int(m.group(1)), float(m.group(2)), float(m.group(3)), float(s.group(1)) if s else None)
            )
    if not rows:
        return {}
    epoch, e, f, s = rows[-1]
    return {
        "epoch": epoch,
        "energy_rmse_mev_per_atom": e,
        "forces_rmse_mev_per_A": f,
        "stress_rmse_mev_per_A3": s,
    }


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data")
    p.add_argument("--valid-last", type=int, required=True)
    p.add_argument("--seconds", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--iso")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--stage-two-epoch", type=int)
    p.add_argument("--calibrate", action="store_true")
    p.add_argument(
        "--stress-transform", default="none",
        help="fix the stress labels as mlip's data.stress_transform does (Mo of Zuo et al.: swap_xz_yz)",
    )  # fmt: skip
    a = p.parse_args(argv)
    venv = os.environ.get("PEER_VENV")
    if not venv:
        print(
            "set PEER_VENV to mace-torch's virtual environment (../shared/peers/README.md)", file=sys.stderr
        )
        return 2
    work = Path(a.out).resolve()
    work.mkdir(parents=True, exist_ok=False)
    stress = write_split(a.data, a.iso, a.valid_last, work, a.stress_transform)
    cmd = [
        "timeout", str(a.seconds), f"{venv}/bin/mace_run_train", "--name", "peer",
        "--train_file", "train.xyz", "--valid_file", "valid.xyz",
        "--energy_key", "REF_energy", "--forces_key", "REF_forces",
        "--E0s", "isolated" if a.iso else "average", "--model", "MACE",
        "--batch_size", str(a.batch_size), "--valid_batch_size", str(2 * a.batch_size),
        "--max_num_epochs", "100000", "--eval_interval", "1", "--ema", "--ema_decay", "0.99",
        "--default_dtype", "float32", "--device", "cpu", "--seed", "1",
    ]  # fmt: skip
    if stress:
        cmd += ["--stress_key", "REF_stress", "--loss", "stress", "--error_table", "PerAtomRMSEstressvirials"]
    else:
        cmd += ["--error_table", "PerAtomRMSE"]
    if a.stage_two_epoch is not None:
        cmd += ["--swa", "--start_swa", str(a.stage_two_epoch)]
    cmd += extra
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    t0 = time.time()
    with open(work / "train.log", "w") as log:
        subprocess.run(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT, env=env)
    wall = time.time() - t0
    text = (work / "train.log").read_text()
    result = parse_log(text)
    result.update(wall_seconds=round(wall, 1), command=" ".join(cmd), stress_fitted=stress)
    if result.get("epoch"):
        # the first epoch includes the data preparation: the rate comes from the whole run, an upper bound
        result["seconds_per_epoch"] = round(wall / (result["epoch"] + 1), 2)
    (work / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    if a.calibrate and result.get("seconds_per_epoch"):
        print(
            f"stage two at 0.75 of a 1200 s budget: --stage-two-epoch {int(0.75 * 1200 / result['seconds_per_epoch'])}"
        )
    return 0 if result.get("epoch") is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
