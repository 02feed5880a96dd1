"""Synthetic MPtrj-layout data for scale tests and benchmarks: copies of real records with perturbed positions."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from mlip.data.mptrj import iter_mptrj_records
from mlip.fileio import atomic_write

__all__ = ["write_synthetic_mptrj"]


def write_synthetic_mptrj(
    source: str | Path, out: str | Path, *, copies: int, sigma: float = 0.02, seed: int = 0,
    target_bytes: int | None = None,
) -> dict:  # fmt: skip
    """Write ``copies`` copies of every record of ``source`` (or as many as reach ``target_bytes``) to ``out``.

    Copy ``c`` of material ``mp`` is the material ``f"{mp}-syn{c}"`` (so splits by material stay meaningful); its
    Cartesian and fractional coordinates are displaced by Gaussian noise of ``sigma`` Å. Labels are copied
    unchanged: the data are for throughput and memory, not for physics. Streams both ways: one record in memory.
    Returns ``{"frames", "materials", "bytes"}``.
    """
    records: dict[str, list[tuple[str, dict]]] = {}
    for mp_id, frame_id, rec in iter_mptrj_records(source):
        records.setdefault(mp_id, []).append((frame_id, rec))
    rng = np.random.default_rng(seed)
    frames = materials = 0
    with atomic_write(out, "w") as fh:  # a 2 GB file appears whole or not at all
        fh.write("{")
        first_mp = True
        for c in range(copies):
            if target_bytes is not None and fh.tell() >= target_bytes:
                break
            for mp_id, entries in records.items():
                if target_bytes is not None and fh.tell() >= target_bytes:
                    break
                fh.write(("" if first_mp else ", ") + json.dumps(f"{mp_id}-syn{c}") + ": {")
                first_mp = False
                for k, (frame_id, rec) in enumerate(entries):
                    new = copy.deepcopy(rec)
                    lattice = np.asarray(new["structure"]["lattice"]["matrix"], dtype=np.float64)
                    inv = np.linalg.inv(lattice)
                    for site in new["structure"]["sites"]:
                        xyz = np.asarray(site["xyz"], dtype=np.float64) + rng.normal(scale=sigma, size=3)
                        site["xyz"] = xyz.tolist()
                        site["abc"] = (xyz @ inv).tolist()
                    new["mp_id"] = f"{mp_id}-syn{c}"
                    fh.write(
                        ("" if k == 0 else ", ") + json.dumps(f"{frame_id}-syn{c}") + ": " + json.dumps(new)
                    )
                    frames += 1
                fh.write("}")
                materials += 1
        fh.write("}")
        size = fh.tell()
    return {"frames": frames, "materials": materials, "bytes": size}
