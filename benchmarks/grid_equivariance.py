"""Equivariance error of a trained grid-MLP model (Facet) against the spherical-grid resolution.

Usage::

    python benchmarks/grid_equivariance.py runs/3bpa_facet/model.pt ../shared/data/3bpa/train_300K.xyz \\
        [--frames 5] [--resolutions 0 5 6 8 12 16]

The grid MLP's weights do not depend on the grid, so the trained weights are loaded into the same model rebuilt
with each ``grid_resolution`` (``0`` = the trained default). For the last ``--frames`` frames of the file, in
float64, prints the largest relative energy-and-force error under a random rotation
(:func:`mlip.testing.physics.rotation_error`), under the inversion ``r -> -r`` (exact at every resolution, as the
grids are inversion-symmetric), under a rotation times inversion, and the largest change of the forces relative to the trained
resolution (how far the trained model's predictions move when the grid is refined).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from ase.io import read

from mlip.models import build_model
from mlip.testing.physics import _transform_error, predict, reflection_error, rotation_error


def rebuild(path: str, resolution: int | None):
    payload = torch.load(path, map_location="cpu", weights_only=True)
    config = {**payload["config"], "dtype": "float64"}
    if config.get("name") != "facet":
        raise SystemExit(f"{path} is a {config.get('name')} model; this script measures grid-MLP models")
    if resolution:
        config["grid_resolution"] = resolution
    model = build_model(config)
    state = {k: v.double() if v.is_floating_point() and k != "atomic_energies" else v
             for k, v in payload["state_dict"].items()}  # fmt: skip
    model.load_state_dict(state, strict=True)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[0, 5, 6, 12, 16])
    args = parser.parse_args()
    frames = read(args.data, f"-{args.frames}:")
    reference = None
    print(f"{'n_beta':>7} {'rotation':>10} {'inversion':>10} {'improper':>10} {'dF vs trained':>14}")
    for res in args.resolutions:
        model = rebuild(args.model, res)
        n_beta = model.mixers[0].resolution
        rot = max(rotation_error(model, a) for a in frames)
        inv = max(_transform_error(model, a, -np.eye(3)) for a in frames)
        improper = max(reflection_error(model, a) for a in frames)
        forces = np.concatenate([p["forces"] for p in predict(model, frames)])
        reference = forces if reference is None else reference
        change = np.abs(forces - reference).max() / np.abs(reference).max()
        print(f"{n_beta:>7} {rot:>10.2e} {inv:>10.2e} {improper:>10.2e} {change:>14.2e}")


if __name__ == "__main__":
    main()
