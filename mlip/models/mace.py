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

from mlip import keys as K
from mlip.kernels import Backend, Irrep, Irreps, spherical_harmonics
from mlip.kernels.product import ProductKind
from mlip.models.config import MACEConfig, parse_dtype
from mlip.models.interaction import InteractionBlock, ProductBlock, message_irreps
from mlip.models.outputs import energy_and_gradients
from mlip.models.species import SpeciesMap
from mlip.nn import BesselBasis, LinearReadout, MLPReadout, PolynomialCutoff


class MACE(nn.Module):
    """MACE potential; ``forward(batch)`` returns energies (and forces/stress by autograd).

    Attributes:
        atomic_numbers: supported Z (sorted list).
        r_max: cutoff, Å.
    """

    def __init__(self, config: MACEConfig) -> None:
        super().__init__()
        self.config = config
        dtype = parse_dtype(config.dtype)
        backend = Backend(config.backend)
        self.dtype_ = dtype
        self.atomic_numbers = list(config.atomic_numbers)
        self.r_max = float(config.r_max)
        self.species = SpeciesMap(config.atomic_numbers)
        n_el, c = len(config.atomic_numbers), config.channels
        self.register_buffer("atomic_energies", torch.tensor(config.atomic_energies, dtype=torch.float64))
        self.embedding = nn.Parameter(torch.randn(n_el, c, dtype=dtype))
        self.radial_basis = BesselBasis(r_max=config.r_max, num_basis=config.num_bessel, dtype=dtype)
        self.cutoff = PolynomialCutoff(r_max=config.r_max, p=config.num_polynomial_cutoff)
        self.irreps_sh = Irreps.spherical_harmonics(config.max_ell)
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

    def node_energies(
        self, vectors: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor
    ) -> torch.Tensor:
        """Per-atom energies ``[N]`` (float64, eV) from edge vectors ``[E, 3]`` (Å) and element indices ``[N]``."""
        lengths = torch.linalg.norm(vectors, dim=-1)
        v = vectors.to(self.dtype_)
        r = lengths.to(self.dtype_)
        sh = spherical_harmonics(self.config.max_ell, v)
        # SplineRadial takes the distance and applies its own envelope; the MLP takes the enveloped basis
        spline = self.config.radial == "spline"
        radial = r if spline else self.radial_basis(r) * self.cutoff(r).unsqueeze(-1)
        h = self.embedding[species].unsqueeze(1)  # [N, 1, C]: scalars
        inter = torch.zeros(species.shape[0], dtype=self.dtype_, device=species.device)
        for interaction, product, readout in zip(self.interactions, self.products, self.readouts):
            a, sc = interaction(h, sh, radial, species, edge_index)
            h = product(a, species, sc)
            inter = inter + readout(h[:, 0, :])
        cfg = self.config
        return self.atomic_energies[species] + (cfg.scale * inter + cfg.shift).to(torch.float64)

    def forward(
        self,
        batch: dict[str, torch.Tensor],
        *,
        compute_forces: bool = True,
        compute_stress: bool = False,
        training: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Energies ``[G]`` (eV), and forces ``[N, 3]`` (eV/Å), stress ``[G, 3, 3]`` (eV/Å³) when asked.

        ``batch`` holds the keys of :mod:`mlip.keys` (a batch from :func:`mlip.data.collate`).
        """
        species = self.species(batch[K.ATOMIC_NUMBERS])
        return energy_and_gradients(
            lambda vectors: self.node_energies(vectors, species, batch[K.EDGE_INDEX]),
            batch,
            compute_forces=compute_forces,
            compute_stress=compute_stress,
            training=training,
        )
