"""Tiny models for tests (fast on a CPU, every code path exercised)."""

from __future__ import annotations

import torch

from mlip.models import build_model

__all__ = ["tiny_mace", "tiny_facet", "tiny_run_config", "speed_model"]


def _tiny(name: str, dtype: torch.dtype, **fields) -> dict:
    """Fields every tiny model shares: H, C, O, Cu, Au; r_max 4 Å; 8 channels; fixed statistics."""
    return dict(
        name=name,
        atomic_numbers=[1, 6, 8, 29, 79],
        atomic_energies=[-1.0, -2.0, -3.0, -4.0, -5.0],
        r_max=4.0,
        channels=8,
        avg_num_neighbors=20.0,
        scale=1.3,
        shift=0.1,
        dtype=str(dtype).replace("torch.", ""),
        **fields,
    )


def tiny_mace(dtype: torch.dtype = torch.float64, **overrides):
    """A 2-layer, 8-channel MACE for H, C, O, Cu, Au (max_ell 3, max_L 1, correlation 3, r_max 4 Å)."""
    config = _tiny("mace", dtype, num_bessel=6, max_ell=3, max_L=1, correlation=3, num_interactions=2,
                   radial_mlp=[16, 16])  # fmt: skip
    config.update(overrides)
    return build_model(config)


def tiny_facet(dtype: torch.dtype = torch.float64, *, gamma: float = 0.7, **overrides):
    """A 2-layer, 8-channel Facet for H, C, O, Cu, Au (max_ell 2, max_L 2, splines, r_max 4 Å).

    The residual scales ``γ`` start at zero in training; here they are set to ``gamma`` so that the grid MLP
    contributes and the physics checks exercise it.
    """
    config = _tiny("facet", dtype, num_spline_knots=12, grid_channels=8, grid_hidden=16)
    config.update(overrides)
    model = build_model(config)
    with torch.no_grad():
        for g in model.gammas:
            g.fill_(gamma)
    return model


def tiny_run_config(**data) -> dict:
    """A ``RunConfig`` dictionary for fast end-to-end ``train.py`` tests: an 8-channel MACE (max_ell 1, max_L 1,
    correlation 2, r_max 4 Å) trained for one epoch; ``data`` fills the ``data`` section."""
    return {
        "model": {"name": "mace", "r_max": 4.0, "channels": 8, "max_ell": 1, "max_L": 1, "correlation": 2,
                  "radial_mlp": [8]},
        "data": dict(data),
        "train": {"max_epochs": 1, "progress_bar": False},
    }  # fmt: skip


def speed_model(name: str = "mace", *, max_L: int = 1, dtype: str = "float32"):
    """The speed benchmarks' Si model: the peer's ``medium`` settings (``../shared/peers/mace_speed.py``): 128
    channels, ``max_L`` 1 (0 small, 2 large), max_ell 3, 2 interactions, r_max 6 Å, 8 Bessel functions; MACE and
    TDN add correlation 3 and a [64, 64, 64] radial MLP, Facet keeps its own defaults for the rest. Random weights."""
    extra = {} if name == "facet" else dict(correlation=3, radial_mlp=[64, 64, 64])
    return build_model(dict(
        name=name, atomic_numbers=[14], atomic_energies=[-1.0], r_max=6.0, num_bessel=8, max_ell=3, channels=128,
        max_L=max_L, num_interactions=2, avg_num_neighbors=30.0, dtype=dtype, **extra,
    )).eval()  # fmt: skip
