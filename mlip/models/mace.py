"""MACE (Batatia et al., NeurIPS 2022, arXiv:2206.07697), as mace-torch's ``ScaleShiftMACE`` with
``RealAgnosticResidualInteractionBlock`` in every layer.

Per layer ``t``: messages ``A^{(t)}`` (:class:`~mlip.models.interaction.InteractionBlock`), product basis and
update ``h^{(t)}`` (:class:`~mlip.models.interaction.ProductBlock`), readout ``e^{(t)}_i`` of the invariant
channels (linear; an MLP in the last layer, whose features are invariant only). The energy is

.. math::  E = \\sum_i \\Big[ E_0(z_i) + s \\sum_t e^{(t)}_i + μ \\Big]

with per-element reference energies ``E_0``, scale ``s`` and shift ``μ``. Forces and stress come from
:mod:`mlip.models.outputs`.
"""

from __future__ import annotations

import torch
from torch import nn

from mlip.kernels import Backend, Irrep, Irreps
from mlip.kernels.product import ProductKind
from mlip.models.base import EdgePotential
from mlip.models.config import MACEConfig
from mlip.models.interaction import InteractionBlock, ProductBlock, message_irreps
from mlip.nn import LinearReadout, MLPReadout

__all__ = ["MACE"]


class MACE(EdgePotential):
    """MACE potential; ``forward(batch)`` returns energies (and forces/stress by autograd).

    Attributes:
        atomic_numbers: supported Z (sorted list).
        r_max: cutoff, Å.
    """

    def __init__(self, config: MACEConfig) -> None:
        super().__init__(config)
        dtype = self.dtype_
        backend = Backend(config.backend)
        n_el, c = len(config.atomic_numbers), config.channels
        hidden = Irreps.spherical_harmonics(config.max_L)
        scalars = Irreps([Irrep(0, 1)])
        self.interactions = nn.ModuleList()
        self.products = nn.ModuleList()
        self.readouts = nn.ModuleList()
        for t in range(config.num_interactions):
            last = t == config.num_interactions - 1
            irreps_in = scalars if t == 0 else hidden
            irreps_out = scalars if last else hidden
            self.interactions.append(
                InteractionBlock(
                    irreps_node=irreps_in,
                    irreps_sh=self.irreps_sh,
                    irreps_skip=irreps_out,
                    channels=c,
                    num_basis=config.num_bessel,
                    radial_mlp=config.radial_mlp,
                    num_elements=n_el,
                    avg_num_neighbors=config.avg_num_neighbors,
                    backend=backend,
                    dtype=dtype,
                    kind=ProductKind(config.tensor_product),
                    cp_rank=config.cp_rank,
                    radial_net=config.radial,
                    r_max=config.r_max,
                    num_spline_knots=config.num_spline_knots,
                    residual=t > 0 or config.first_interaction == "residual",
                )
            )
            self.products.append(
                ProductBlock(
                    irreps_in=message_irreps(self.irreps_sh, ProductKind(config.tensor_product)),
                    irreps_out=irreps_out,
                    channels=c,
                    correlation=config.correlation,
                    num_elements=n_el,
                    backend=backend,
                    dtype=dtype,
                    product_basis=config.product_basis,
                )
            )
            self.readouts.append(
                MLPReadout(c, config.readout_mlp, dtype=dtype) if last else LinearReadout(c, dtype=dtype)
            )

    @property
    def feature_irreps(self) -> list[Irreps]:
        """``0e + 1o + ... + max_L`` after every layer but the last, whose features are invariant (``0e``)."""
        return [p.irreps_out for p in self.products]

    def interaction_energy(
        self, h, sh, radial, species, edge_index, features=None, readouts=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``ε_i = Σ_t e_i^{(t)}``: the readouts of every layer, and the last layer's scalars ``[N, C]`` (see
        :class:`~mlip.models.base.EdgePotential`)."""
        inter = torch.zeros(species.shape[0], dtype=self.dtype_, device=species.device)
        readouts = self.readouts if readouts is None else readouts
        for interaction, product, readout in zip(self.interactions, self.products, readouts, strict=True):
            a, sc = interaction(h, sh, radial, species, edge_index)
            h = product(a, species, sc)
            if features is not None:
                features.append(h)
            inter = inter + readout(h[:, 0, :])
        return inter, h[:, 0, :]
