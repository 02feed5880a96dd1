"""Fuzzing every reader with damaged copies of real files: random truncations and byte flips of files built from
``../shared/data`` (extxyz, ASE db, ASE trajectory, MPtrj JSON, fairchem aselmdb, legacy OC20 LMDB, preprocessed
shards, model files, exported artefacts).

Every case must end in a clear error (:class:`mlip.errors.MLIPError`) or a result read without error; never a
crash of the interpreter, a hang, or another exception. For the formats mlip writes itself (preprocessed shards,
model files, .pt2 artefacts), which carry checksums, a result read without error must also equal the original: damage is never
read as other numbers. Text and foreign binary formats without checksums (extxyz, JSON, sqlite, ASE trajectory,
LMDB) cannot tell a flipped digit from a real value; their "changed" outcomes are counted and printed, not failed.

``MLIP_FUZZ_SEED`` picks the damage (fixed by default so that CI is repeatable); ``MLIP_FUZZ_CASES`` the number of
cases per file (default 24). The test prints the counts of every outcome per format.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.io import read, write

import mlip
from mlip.data.aselmdb import write_aselmdb
from mlip.data.preprocess import preprocess
from mlip.deploy.export import export_model
from mlip.models import save_model
from mlip.testing.models import tiny_mace
from mlip.testing.oc20_lmdb import write_pyg_lmdb

CHILD = Path(__file__).with_name("fuzz_child.py")
SEED = int(os.environ.get("MLIP_FUZZ_SEED", "7"))
CASES = int(os.environ.get("MLIP_FUZZ_CASES", "24"))
CHECKSUMMED = {"preprocessed", "model", "exported"}


def _originals(shared: Path, root: Path) -> dict[str, tuple[str, Path]]:
    """``{format: (reader kind, original file or directory)}``, small files made from the shared data."""
    mo = read(shared / "zuo2020_elemental" / "Mo_training.extxyz", ":4")
    oc20 = read(shared / "oc20_s2ef_sample" / "traj" / "random1000156.traj", ":3")
    write(root / "mo.extxyz", mo)
    write(root / "oc20.traj", oc20)
    write(root / "mo.db", mo)
    shutil.copy(shared / "mptrj_sample" / "orb_mptrj_reconstructed.json", root / "mptrj.json")
    write_aselmdb(root / "oc20.aselmdb", oc20)
    write_pyg_lmdb(root / "oc20.lmdb", oc20, sid=1000156)
    preprocess([root / "mo.extxyz"], root / "store", shard_size=2)
    torch.manual_seed(0)
    model = tiny_mace(torch.float32, channels=4, max_ell=2, correlation=2)
    save_model(model, root / "model.pt")
    export_model(model, root / "model.pt2")
    return {
        "extxyz": ("frames", root / "mo.extxyz"),
        "ase-db": ("frames", root / "mo.db"),
        "ase-traj": ("frames", root / "oc20.traj"),
        "mptrj-json": ("frames", root / "mptrj.json"),
        "aselmdb": ("frames", root / "oc20.aselmdb"),
        "legacy-lmdb": ("frames", root / "oc20.lmdb"),
        "preprocessed": ("preprocessed", root / "store"),
        "model": ("model", root / "model.pt"),
        "exported": ("exported", root / "model.pt2"),
    }


def _damage(data: bytes, rng: np.random.Generator, k: int) -> tuple[bytes, str]:
    """A truncation (one case in three) or 1-4 flipped bytes."""
    if k % 3 == 0:
        cut = int(rng.integers(0, len(data)))
        return data[:cut], f"truncated to {cut} of {len(data)} bytes"
    out = bytearray(data)
    spots = rng.integers(0, len(data), size=int(rng.integers(1, 5)))
    for i in spots:
        out[i] ^= int(rng.integers(1, 256))
    return bytes(out), f"bytes {sorted(spots.tolist())} flipped"


def _cases(formats: dict, root: Path) -> list[dict]:
    rng = np.random.default_rng(SEED)
    cases = []
    for name, (kind, original) in formats.items():
        for k in range(CASES):
            dst = root / "cases" / f"{name}-{k}"
            dst.mkdir(parents=True)
            if original.is_dir():  # damage one file of the directory
                target_dir = dst / original.name
                shutil.copytree(original, target_dir)
                files = sorted(p for p in target_dir.rglob("*") if p.is_file() and p.name != ".lock")
                victim = files[int(rng.integers(0, len(files)))]
                data, how = _damage(victim.read_bytes(), rng, k)
                victim.write_bytes(data)
                path, how = target_dir, f"{victim.relative_to(target_dir)} {how}"
            else:
                path = dst / original.name
                data, how = _damage(original.read_bytes(), rng, k)
                path.write_bytes(data)
            cases.append({"id": f"{name}-{k}", "format": name, "kind": kind, "path": str(path),
                          "original": str(original), "damage": how})  # fmt: skip
    return cases


def _run(cases: list[dict], root: Path) -> dict[str, dict]:
    """Run the child until every case has an outcome; a case during which the child died is a ``crash``."""
    (root / "cases.json").write_text(json.dumps(cases))
    results = root / "results.jsonl"
    env = dict(os.environ, PYTHONPATH=str(Path(mlip.__file__).resolve().parents[1]))
    for _ in range(len(cases) + 1):
        proc = subprocess.run(
            [sys.executable, str(CHILD), str(root / "cases.json"), str(results)],
            capture_output=True, text=True, timeout=1800, env=env,
        )  # fmt: skip
        lines = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
        finished = {r["id"] for r in lines if "outcome" in r}
        if proc.returncode == 0 and len(finished) == len(cases):
            break
        started = [r["id"] for r in lines if r.get("start") and r["id"] not in finished]
        assert started, f"the fuzz child failed outside a case: {proc.stderr[-2000:]}"
        with open(results, "a") as fh:  # the child died in this case
            detail = f"exit status {proc.returncode}: {proc.stderr.strip()[-200:]}"
            fh.write(json.dumps({"id": started[-1], "outcome": "crash", "detail": detail}) + "\n")
    return {r["id"]: r for r in map(json.loads, results.read_text().splitlines()) if "outcome" in r}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("fuzz")
    cases = _cases(_originals(shared_data, root), root)
    results = _run(cases, root)
    table = Counter()
    for case in cases:
        case.update(results[case["id"]])
        table[(case["format"], case["outcome"])] += 1
    formats = sorted({c["format"] for c in cases})
    kinds = ["error", "same", "changed", "unclear", "crash", "hang"]
    lines = [f"fuzz (seed {SEED}, {len(cases)} cases): format " + " ".join(kinds)]
    lines += [f"  {f:13s} " + " ".join(f"{table[(f, k)]:>5d}" for k in kinds) for f in formats]
    print("\n".join(lines))
    report = os.environ.get("MLIP_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps(cases, indent=1))
    return cases


def test_no_reader_crashes_hangs_or_raises_an_unclear_error(outcomes):
    bad = [c for c in outcomes if c["outcome"] in ("unclear", "crash", "hang")]
    assert not bad, "\n".join(f"{c['id']} ({c['damage']}): {c['outcome']} {c['detail']}" for c in bad[:15])


def test_damage_to_checksummed_files_is_never_read_as_other_numbers(outcomes):
    silent = [c for c in outcomes if c["format"] in CHECKSUMMED and c["outcome"] == "changed"]
    assert not silent, "\n".join(f"{c['id']} ({c['damage']})" for c in silent)


def test_the_clear_errors_name_the_file(outcomes):
    for c in outcomes:
        if c["outcome"] == "error":
            name = Path(c["path"]).name
            assert name in c["detail"] or Path(c["path"]).parent.name in c["detail"], (c["id"], c["detail"])


def test_every_format_was_damaged(outcomes):
    per_format = Counter(c["format"] for c in outcomes)
    assert len(per_format) == 9
    assert min(per_format.values()) == CASES
    assert sum(c["outcome"] == "error" for c in outcomes) > len(outcomes) / 4  # the damage is mostly noticed
