"""How well a cubic B-spline reproduces the radial MLPs of a trained model.

Usage::

    python benchmarks/spline_fit.py runs/3bpa/model.pt [--r-min 0.8] [--knots 16 24 32 48 64]

For every interaction block of a model trained with ``radial: mlp`` (MACE's default), evaluates the radial MLP
``R(r) = MLP(u(r) b(r))`` on 4,000 distances in ``[r_min, r_max]``, fits a :class:`~mlip.nn.spline.SplineRadial`
with ``K`` uniform knots on ``[0, r_max]`` by least squares (:meth:`~mlip.nn.spline.SplineRadial.fit_`), and
prints the relative errors ``max |R_spline - R| / max |R|`` and ``‖R_spline - R‖ / ‖R‖`` over all outputs.
``r_min`` should be below the shortest distance in the training data (0.8 Å suits organic molecules).
"""

from __future__ import annotations

import argparse

import torch

from mlip import load_model
from mlip.nn.spline import SplineRadial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--r-min", type=float, default=0.8, help="shortest distance fitted (Å)")
    parser.add_argument("--knots", type=int, nargs="+", default=[16, 24, 32, 48, 64])
    args = parser.parse_args()
    model = load_model(args.model, dtype="float64")
    if model.config.radial != "mlp":
        raise SystemExit(f"{args.model} uses radial: {model.config.radial}; this script fits radial MLPs")
    r = torch.linspace(args.r_min, model.r_max, 4000, dtype=torch.float64)
    with torch.no_grad():
        x = model.radial_basis(r) * model.cutoff(r)[:, None]
        print(f"{'block':>5} {'outputs':>7} {'K':>4} {'max rel':>10} {'rms rel':>10}")
        for t, block in enumerate(model.interactions):
            y = block.radial(x)
            for k in args.knots:
                spline = SplineRadial(r_max=model.r_max, num_out=y.shape[1], num_knots=k, dtype=torch.float64)
                max_rel = spline.fit_(r, y)
                rms_rel = float((spline(r) - y).norm() / y.norm())
                print(f"{t:>5} {y.shape[1]:>7} {k:>4} {max_rel:>10.2e} {rms_rel:>10.2e}")


if __name__ == "__main__":
    main()
