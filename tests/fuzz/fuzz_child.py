"""Read damaged files in a child process and report, case by case, what the reader did.

``python fuzz_child.py CASES.json RESULTS.jsonl``: ``CASES.json`` is a list of ``{"id", "kind", "path",
"original"}``; for each case not yet in ``RESULTS.jsonl`` one line ``{"id", "outcome", "detail"}`` is appended,
after a ``{"id", "start": true}`` line, so that the parent can tell which case a crash or a hang happened in.

Outcomes: ``error`` (an :class:`~mlip.errors.MLIPError`, the clear error a user gets), ``same`` (read, equal to
the original), ``changed`` (read without error, different from the original), ``unclear`` (any other exception:
a bug in the reader's error handling). A case that takes longer than 20 s is a ``hang``.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sys
from pathlib import Path

import numpy as np

CASE_SECONDS = 20


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _frames_digest(frames) -> str:
    arrays = []
    for f in frames:
        arrays += [
            f.atoms.numbers,
            f.atoms.positions,
            f.atoms.cell.array,
            f.atoms.pbc,
            f.energy,
            f.forces,
            f.stress,
        ]
    return _digest(arrays)


def read(kind: str, path: str) -> str:
    """The fingerprint of what the reader of ``kind`` gets from ``path``."""
    if (
        kind == "frames"
    ):  # every reader behind read_frames: extxyz, ASE db and .traj, MPtrj JSON, LMDB layouts
        from mlip.data import read_frames

        return _frames_digest(read_frames(path))
    if kind == "preprocessed":
        from mlip.data.store import PreprocessedDataset

        ds = PreprocessedDataset(path, r_max=4.0)
        return _frames_digest(ds.frame(i) for i in range(len(ds)))
    if kind == "model":
        import mlip

        model = mlip.load_model(path)
        return _digest(v.detach().double().numpy() for _, v in sorted(model.state_dict().items()))
    if kind == "exported":  # an mlip-export artefact: its metadata and its outputs on one fixed structure
        import json

        from ase.build import bulk

        from mlip.deploy.exported import ExportedModel

        art = ExportedModel(path)
        out = art.compute(bulk("Cu", "fcc", a=3.6, cubic=True))
        meta = json.dumps(art.meta, sort_keys=True)
        return _digest([out[k].detach().double().numpy() for k in sorted(out)]) + meta
    raise ValueError(f"unknown kind {kind}")


class _Hang(BaseException):
    """Raised by the alarm; a BaseException, so that no reader's ``except Exception`` can swallow it."""


def _timeout(signum, frame):
    raise _Hang


def main() -> int:
    cases = json.loads(Path(sys.argv[1]).read_text())
    results = Path(sys.argv[2])
    done = set()
    if results.exists():
        done = {json.loads(line)["id"] for line in results.read_text().splitlines() if "outcome" in line}
    from mlip.errors import MLIPError

    originals: dict = {}
    signal.signal(signal.SIGALRM, _timeout)
    with open(results, "a") as out:
        for case in cases:
            if case["id"] in done:
                continue
            out.write(json.dumps({"id": case["id"], "start": True}) + "\n")
            out.flush()
            key = (case["kind"], case["original"])
            if key not in originals:
                originals[key] = read(case["kind"], case["original"])
            signal.alarm(CASE_SECONDS)
            try:
                got = read(case["kind"], case["path"])
                outcome, detail = ("same" if got == originals[key] else "changed"), ""
            except MLIPError as err:
                outcome, detail = "error", " ".join(str(err).split())[:300]
            except _Hang:
                outcome, detail = "hang", f"more than {CASE_SECONDS} s"
            except Exception as err:  # noqa: BLE001 - any other exception is what this harness looks for
                outcome, detail = "unclear", f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
            finally:
                signal.alarm(0)
            out.write(json.dumps({"id": case["id"], "outcome": outcome, "detail": detail}) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
