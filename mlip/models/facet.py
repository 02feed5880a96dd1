"""Facet (Miklaucic et al. 2025): NequIP/SevenNet-style convolutions with spline radial functions and a
spherical-grid MLP self-interaction.

Per layer ``t``:

.. math::  m_i = \\mathrm{Linear}\\Big(\\frac{1}{\\bar n} \\sum_{j} \\mathrm{TP}\\big(\\mathrm{Linear}(h_j), Y(\\hat r_{ij});
           R(r_{ij})\\big)\\Big), \\qquad
           h_i \\leftarrow W_{z_i} h_i + γ ⊙ \\mathrm{GridMLP}\\big(\\mathrm{Norm}(m_i)\\big)

with the channel-wise product of :mod:`mlip.kernels.product` (``tensor_product`` selects the kind), the spline
radial function of :mod:`mlip.nn.spline` (or the Bessel MLP), the grid MLP of :mod:`mlip.nn.grid_mlp`, an
element-dependent linear self-connection ``W_z``, an equivariant RMS norm and a per-channel residual scale ``γ``
that starts at zero (so every layer starts as the identity on its scalars).

``residual_norm`` places the norm: ``"pre"`` (above, the default) normalises the messages before the grid MLP, so
the per-point MLP sees inputs of unit RMS whatever the message scale; ``"post"`` normalises the MLP's output,
``γ ⊙ Norm(GridMLP(m))``; ``"none"`` drops it. Validation force RMSE on 3BPA after 5 epochs (32 channels,
lr 0.01): pre 131 meV/Å, post 158, none 166 (and 122 for a pre-norm with one scale per degree, which amplified
the vanishing vector blocks at inversion centres and failed the finite-difference stress check; see
:class:`EquivariantRMSNorm`).

The energy is read out from the invariant channels after every layer, as in MACE:
``E = Σ_i [E_0(z_i) + s Σ_t e_i^{(t)} + μ]``.

Facet-S uses 128x0e+64x1o+32x2e. mlip's layout shares one channel count across irreps, so the equivalent here is
``channels`` copies of ``0e+1o+2e`` (``max_L = 2``), natural parity throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from mlip.errors import MLIPInputError
from mlip.kernels import Backend, Irrep, Irreps
from mlip.kernels.product import ProductKind
from mlip.models.base import EdgePotential
from mlip.models.config import BackboneConfig
from mlip.models.interaction import InteractionBlock
from mlip.nn import LinearReadout, MLPReadout
from mlip.nn.grid_mlp import GridMLP

__all__ = ["FacetConfig", "EquivariantRMSNorm", "Facet"]


@dataclass(frozen=True, kw_only=True)
class FacetConfig(BackboneConfig):
    """Facet hyperparameters (defaults: Facet-S with splines). Shared fields as
    :class:`~mlip.models.config.BackboneConfig`, with Facet's defaults.

    Attributes:
        channels: ``C`` for every irrep of the hidden features ``0e+1o+..+max_L``.
        grid_channels, grid_hidden, grid_heads, grid_resolution: the grid MLP (``U``, hidden width per head,
            heads, ``n_β``; ``None`` gives ``2 max_L + 4``). Defaults as Facet-S's grid layer (MLP ``U/2 -> 16 ->
            U/2`` per head, 2 heads; Facet-S uses an 18 x 17 grid, the default here for ``max_L = 2`` is 8 x 16).
        residual_norm: ``"pre"``, ``"post"`` or ``"none"`` (see the module docstring).
    """

    name: str = "facet"
    max_ell: int = 2
    max_L: int = 2
    channels: int = 64
    radial: str = "spline"
    radial_mlp: tuple[int, ...] = field(default=(64, 64))
    grid_channels: int = 32
    grid_hidden: int = 16
    grid_heads: int = 2
    grid_resolution: int | None = None
    residual_norm: str = "pre"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("grid_channels", "grid_hidden", "grid_heads"):
            if int(getattr(self, name)) < 1:
                raise MLIPInputError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.residual_norm not in ("pre", "post", "none"):
            raise MLIPInputError(
                f"model.residual_norm must be 'pre', 'post' or 'none', got {self.residual_norm!r}"
            )


class EquivariantRMSNorm(nn.Module):
    """``x / sqrt(mean_{k,c} x_k^2 + ε)``: one invariant scale per node from all components ``k`` and channels
    ``c`` together (equivariant, as the norm over all irreps is invariant).

    One scale for all degrees, not one per degree: a degree whose block vanishes by symmetry (the vectors at an
    inversion centre) stays zero instead of having its rounding noise blown up to unit size. ``ε = 1e-2`` bounds
    the gain for nodes whose messages fade (a neighbour leaving the cutoff) to 10, which keeps the energy's
    approach to the cutoff as flat as the envelope makes it (the kit's cutoff check fails with ``ε = 1e-6``).

    Shapes: ``[N, dim, C]`` -> same.
    """

    def __init__(self, eps: float = 1e-2) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(x.pow(2).mean(dim=(1, 2), keepdim=True) + self.eps)


class Facet(EdgePotential):
    """Facet potential; ``forward(batch)`` as :class:`~mlip.models.mace.MACE`."""

    def __init__(self, config: FacetConfig) -> None:
        super().__init__(config)
        dtype = self.dtype_
        n_el, c = len(config.atomic_numbers), config.channels
        hidden = Irreps.spherical_harmonics(config.max_L)
        self.interactions, self.mixers, self.norms = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.readouts = nn.ModuleList()
        self.gammas = nn.ParameterList()
        for t in range(config.num_interactions):
            irreps_in = Irreps([Irrep(0, 1)]) if t == 0 else hidden
            last = t == config.num_interactions - 1
            self.interactions.append(
                InteractionBlock(
                    irreps_node=irreps_in, irreps_sh=self.irreps_sh, irreps_skip=hidden, channels=c,
                    num_basis=config.num_bessel, radial_mlp=config.radial_mlp, num_elements=n_el,
                    avg_num_neighbors=config.avg_num_neighbors, backend=Backend(config.backend), dtype=dtype,
                    kind=ProductKind(config.tensor_product), radial_net=config.radial, r_max=config.r_max,
                    num_spline_knots=config.num_spline_knots, irreps_out=hidden,
                )
            )  # fmt: skip
            self.mixers.append(
                GridMLP(
                    irreps_in=hidden, irreps_out=hidden, channels_in=c, channels_out=c,
                    grid_channels=config.grid_channels, hidden=config.grid_hidden, heads=config.grid_heads,
                    resolution=config.grid_resolution, dtype=dtype,
                )
            )  # fmt: skip
            self.norms.append(EquivariantRMSNorm())
            self.gammas.append(nn.Parameter(torch.zeros(c, dtype=dtype)))
            self.readouts.append(
                MLPReadout(c, config.readout_mlp, dtype=dtype) if last else LinearReadout(c, dtype=dtype)
            )

    @property
    def feature_irreps(self) -> list[Irreps]:
        """``0e + 1o + ... + max_L`` after every layer."""
        return [Irreps.spherical_harmonics(self.config.max_L)] * self.config.num_interactions

    def interaction_energy(
        self, h, sh, radial, species, edge_index, features=None, readouts=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``ε_i = Σ_t e_i^{(t)}``: the readouts of every layer, and the last layer's scalars ``[N, C]`` (see
        :class:`~mlip.models.base.EdgePotential`)."""
        inter = torch.zeros(species.shape[0], dtype=self.dtype_, device=species.device)
        readouts = self.readouts if readouts is None else readouts
        for interaction, mixer, norm, gamma, readout in zip(
            self.interactions, self.mixers, self.norms, self.gammas, readouts, strict=True
        ):
            m, sc = interaction(h, sh, radial, species, edge_index)
            mode = self.config.residual_norm
            if mode == "pre":
                h = sc + gamma * mixer(norm(m))
            elif mode == "post":
                h = sc + gamma * norm(mixer(m))
            else:
                h = sc + gamma * mixer(m)
            if features is not None:
                features.append(h)
            inter = inter + readout(h[:, 0, :])
        return inter, h[:, 0, :]
