"""What every message-passing backbone shares: element embedding, edge features, energy assembly, forward.

A subclass builds its layers in ``__init__`` (after ``super().__init__(config)``) and implements
:meth:`EdgePotential.interaction_energy`. The per-atom energy is

.. math::  E_i = E_0(z_i) + s\\, (ε_i \\, [+ V^{ZBL}_i]) + μ \\; \\big[ + \\tfrac{k_e}{2} q_i φ_i \\big]

with the reference energies ``E_0``, scale ``s`` and shift ``μ`` of the config and the model's interaction
energy ``ε_i``; with ``pair_repulsion``, the ZBL energy :class:`~mlip.nn.pair.ZBLRepulsion` joins it inside the
scale (mace-torch's ``ScaleShiftMACE``); with ``long_range`` configured, charges ``q_i`` from the last layer's invariant features
(:class:`~mlip.longrange.charges.ChargeHead`) add their Coulomb energy (:mod:`mlip.longrange.layer`). Forces and
stress come from :mod:`mlip.models.outputs`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from mlip import keys as K
from mlip.errors import MLIPInputError
from mlip.kernels import Irreps, spherical_harmonics
from mlip.longrange.charges import ChargeHead
from mlip.longrange.layer import coulomb_node_energies, model_sigma, plan_long_range
from mlip.models.config import parse_dtype
from mlip.models.heads import EnergyHead
from mlip.models.outputs import edge_vectors, energy_and_gradients
from mlip.models.species import SpeciesMap
from mlip.nn import BesselBasis, PolynomialCutoff
from mlip.nn.pair import AgnesiTransform, ZBLRepulsion

__all__ = ["NodeFeatures", "EdgePotential"]


@dataclass(frozen=True)
class NodeFeatures:
    """One layer's node features: ``features [N, irreps.dim, channels]`` (channel-last, network dtype), the block of
    irrep ``k`` at ``features[:, irreps.offsets[k]:irreps.offsets[k + 1], :]``; ``irreps`` lists the irreps of one
    channel (:class:`~mlip.kernels.Irreps`). :func:`mlip.interop.e3nn.to_e3nn_layout` turns it into e3nn's layout."""

    irreps: Irreps
    features: torch.Tensor

    @property
    def invariants(self) -> torch.Tensor:
        """``[N, n0 * channels]``: the ``0e`` blocks (rotation- and reflection-invariant), channels fastest."""
        blocks = [
            self.features[:, o, :]
            for ir, o in zip(self.irreps, self.irreps.offsets)
            if ir.l == 0 and ir.p == 1
        ]
        return torch.cat(blocks, dim=-1)


class EdgePotential(nn.Module):
    """Base of the backbones. Reads from ``config``: ``atomic_numbers``, ``atomic_energies``, ``r_max``,
    ``channels``, ``max_ell``, ``num_bessel``, ``num_polynomial_cutoff``, ``radial``, ``scale``, ``shift``,
    ``dtype``.

    Attributes:
        atomic_numbers: supported Z (sorted list).
        r_max: cutoff, Å.
        embedding: ``[num_elements, channels]`` initial scalar features.
        irreps_sh: irreps of the edge spherical harmonics.
    """

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.dtype_ = parse_dtype(config.dtype)
        self.atomic_numbers = list(config.atomic_numbers)
        self.r_max = float(config.r_max)
        self.species = SpeciesMap(config.atomic_numbers)
        self.register_buffer("atomic_energies", torch.tensor(config.atomic_energies, dtype=torch.float64))
        n_el = len(config.atomic_numbers)
        self.embedding = nn.Parameter(torch.randn(n_el, config.channels, dtype=self.dtype_))
        self.radial_basis = BesselBasis(r_max=config.r_max, num_basis=config.num_bessel, dtype=self.dtype_)
        self.cutoff = PolynomialCutoff(r_max=config.r_max, p=config.num_polynomial_cutoff)
        self.irreps_sh = Irreps.spherical_harmonics(config.max_ell)
        self.register_buffer("z_table", torch.tensor(self.atomic_numbers), persistent=False)
        self.zbl = ZBLRepulsion(p=config.num_polynomial_cutoff) if config.pair_repulsion else None
        self.distance_transform = AgnesiTransform() if config.distance_transform == "agnesi" else None
        self.charge_head = None
        if config.long_range is not None:
            self.charge_head = ChargeHead(config.channels, config.long_range.charge_hidden, dtype=self.dtype_)
        self._compiled_network = None  # set by compile_network

    def compile_network(self, **options) -> EdgePotential:
        """Compile the network, edge vectors -> per-atom energies (:meth:`node_energies`), with
        ``torch.compile(fullgraph=True, dynamic=True, **options)``; returns ``self``.

        ``fullgraph=True``: the network traces as one graph (no graph breaks, no host synchronisation) or this
        raises when first called. Forces and stress still come from ``torch.autograd.grad`` outside the graph,
        through the compiled backward. Inference only: PyTorch's compiled backward is not differentiable again,
        so a training step (``training=True``, the force loss needs a second derivative) raises. With
        ``long_range``, the Coulomb term is in the graph; its data-dependent index tensors are built before it
        (:func:`mlip.longrange.layer.plan_long_range`), and free structures too large for the direct sum
        (Chebyshev–Tucker) are refused.

        Dynamo caches compiled graphs per code object (``node_energies``), at most
        ``torch._dynamo.config.recompile_limit`` (8) of them per process: models of one structure (a committee)
        share a graph; more than 8 different structures compiled in one process raise a recompile-limit error.
        """
        compiled = torch.compile(self.node_energies, fullgraph=True, dynamic=True, **options)

        def network(*args, **kwargs):
            # The model's float constants (cutoff, normalisations, scale) are fixed numbers: with dynamic=True,
            # Dynamo would trace them as symbolic inputs, which costs minutes of tracing and, with the long-range
            # term, a restart of the analysis. Scoped to the call, not set process-wide.
            with torch._dynamo.config.patch(specialize_float=True):
                return compiled(*args, **kwargs)

        self._compiled_network = network
        return self

    def set_atomic_energies(self, values: torch.Tensor) -> None:
        """Replace the reference energies ``E_0`` (``[num_elements]``, eV, in ``atomic_numbers`` order) in the
        buffer and in the config, so that the model file records the values the model uses."""
        values = torch.as_tensor(values, dtype=torch.float64)
        if values.shape != self.atomic_energies.shape or not bool(torch.isfinite(values).all()):
            raise ValueError(
                f"atomic energies must be {tuple(self.atomic_energies.shape)} finite values, got {values.tolist()}"
            )
        self.atomic_energies.copy_(values.to(self.atomic_energies.device))
        self.config = dataclasses.replace(self.config, atomic_energies=tuple(float(v) for v in values))

    def edge_features(
        self,
        vectors: torch.Tensor,
        species: torch.Tensor | None = None,
        edge_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Spherical harmonics ``[E, irreps_sh.dim]`` and the radial-network input: the distance ``[E]`` (Å) for
        ``radial: spline`` (the spline applies its own envelope), else the enveloped Bessel basis ``[E, num_bessel]``
        (of the Agnesi-transformed distance with ``distance_transform``, which reads the edge's elements from
        ``species [N]`` and ``edge_index [2, E]``)."""
        r = torch.linalg.norm(vectors, dim=-1).to(self.dtype_)
        sh = spherical_harmonics(self.config.max_ell, vectors.to(self.dtype_))
        if self.config.radial == "spline":
            return sh, r
        basis_r = r
        if self.distance_transform is not None:
            if species is None or edge_index is None:
                raise ValueError("the Agnesi distance transform needs species and edge_index")
            z = self.z_table[species]
            basis_r = self.distance_transform(r, z[edge_index[0]], z[edge_index[1]])
        return sh, self.radial_basis(basis_r) * self.cutoff(r).unsqueeze(-1)

    def interaction_energy(
        self,
        h: torch.Tensor,
        sh: torch.Tensor,
        radial: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        features: list[torch.Tensor] | None = None,
        readouts: nn.ModuleList | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - overridden
        """``(ε_i [N], s_i [N, C])`` in the network dtype from the embedded scalars ``h [N, 1, C]`` and the edge
        features: the interaction energy and the last layer's invariant features (read by the charge head).
        With ``features`` given, each layer's node features ``[N, feature_irreps[t].dim, C]`` are appended to it.
        ``readouts`` (one per layer, as ``self.readouts``) replaces the model's own: another energy head's."""
        raise NotImplementedError

    @property
    def feature_irreps(self) -> list[Irreps]:  # pragma: no cover - overridden
        """The irreps (per channel) of each layer's node features, as :meth:`node_features` returns them."""
        raise NotImplementedError

    def node_features(self, batch: dict[str, torch.Tensor]) -> list[NodeFeatures]:
        """Every layer's node features of ``batch`` (the keys of :mod:`mlip.keys`), for a head of one's own
        (charges, dipoles, band gaps) on this trunk.

        Returns one :class:`NodeFeatures` per interaction layer, ``features [N, irreps.dim, channels]`` in the
        network dtype. They are differentiable with respect to ``batch[POSITIONS]`` (set ``requires_grad`` on it
        to take forces of a head's output) and to the model's parameters; wrap the call in ``torch.no_grad()``
        for a frozen trunk. Equivariant: under a rotation ``R`` the block of irrep ``l`` transforms with
        ``D^l(R)`` (:func:`mlip.kernels.wigner_d`).
        """
        species = self.species(batch[K.ATOMIC_NUMBERS])
        positions = batch[K.POSITIONS]
        vectors = edge_vectors(positions.to(torch.float64), batch[K.CELL].to(torch.float64), batch)
        sh, radial = self.edge_features(vectors, species, batch[K.EDGE_INDEX])
        h = self.embedding[species].unsqueeze(1)
        layers: list[torch.Tensor] = []
        self.interaction_energy(h, sh, radial, species, batch[K.EDGE_INDEX], features=layers)
        return [NodeFeatures(irreps, f) for irreps, f in zip(self.feature_irreps, layers, strict=True)]

    def node_energies(
        self, vectors: torch.Tensor, species: torch.Tensor, batch: dict[str, torch.Tensor],
        positions: torch.Tensor | None = None, cell: torch.Tensor | None = None, large_free: tuple[int, ...] = (),
        head: EnergyHead | None = None,
    ) -> dict[str, torch.Tensor]:  # fmt: skip
        """``NODE_ENERGY [N]`` (float64, eV), and ``CHARGES [N]`` (e) with a long-range term, from edge vectors
        ``[E, 3]`` (Å), element indices ``[N]`` and the batch; the long-range term also reads the (strained)
        ``positions [N, 3]`` and ``cell [G, 3, 3]`` (float64, Å) and the plan entries of the batch
        (:func:`~mlip.longrange.layer.plan_long_range`; ``large_free`` from it). ``head``
        (:class:`~mlip.models.heads.EnergyHead`) replaces the model's readouts, ``E_0``, scale and shift."""
        edge_index = batch[K.EDGE_INDEX]
        sh, radial = self.edge_features(vectors, species, edge_index)
        h = self.embedding[species].unsqueeze(1)  # [N, 1, C]: scalars
        # readouts only with a head: a backbone of one's own need not take the argument
        kwargs = {} if head is None else {"readouts": head.readouts}
        inter, scalars = self.interaction_energy(h, sh, radial, species, edge_index, **kwargs)
        cfg = self.config
        if self.zbl is not None:  # inside the scale and shift, as mace-torch's ScaleShiftMACE
            z = self.z_table[species]
            r = torch.linalg.norm(vectors.to(torch.float64), dim=-1)
            pair = self.zbl(r, z[edge_index[0]], z[edge_index[1]], edge_index[1], species.shape[0])
            inter = inter.to(torch.float64) + pair
        if head is None:
            e0, scale, shift = self.atomic_energies, cfg.scale, cfg.shift
        else:
            e0, scale, shift = head.atomic_energies, head.scale, head.shift
        node_energy = e0[species] + (scale * inter + shift).to(torch.float64)
        if self.charge_head is None:
            return {K.NODE_ENERGY: node_energy}
        total = batch.get(K.TOTAL_CHARGE)
        if total is None:
            total = torch.zeros(batch[K.CELL].shape[0], dtype=torch.float64, device=species.device)
        charges = self.charge_head(scalars, batch[K.BATCH], total)
        coulomb = coulomb_node_energies(
            vectors.to(torch.float64), positions, charges, cell, batch,
            sigma=model_sigma(self.r_max, cfg.long_range), config=cfg.long_range, large_free=large_free,
        )  # fmt: skip
        return {K.NODE_ENERGY: node_energy + coulomb, K.CHARGES: charges}

    def forward(
        self,
        batch: dict[str, torch.Tensor],
        *,
        compute_forces: bool = True,
        compute_stress: bool = False,
        training: bool = False,
        head: EnergyHead | None = None,
    ) -> dict[str, torch.Tensor]:
        """Energies ``[G]`` (eV), and forces ``[N, 3]`` (eV/Å), stress ``[G, 3, 3]`` (eV/Å³) when asked.

        ``batch`` holds the keys of :mod:`mlip.keys` (a batch from :func:`mlip.data.collate`). ``head``: another
        energy head on this trunk (:class:`~mlip.models.heads.EnergyHead`, eager network only), as multihead
        fine-tuning trains one per dataset.
        """
        species = self.species(batch[K.ATOMIC_NUMBERS])
        network = self.node_energies
        if self._compiled_network is not None:
            if training:
                raise RuntimeError(
                    "this model's network is compiled for inference (compile_network): a training step needs "
                    "a second derivative, which PyTorch's compiled backward does not provide; train the eager model"
                )
            network = self._compiled_network
            if head is not None:
                raise RuntimeError("another energy head runs on the eager network only (not compile_network)")
        large_free: tuple[int, ...] = ()
        if self.charge_head is not None:
            plan, large_free = plan_long_range(
                batch[K.CELL], batch[K.PBC], batch[K.BATCH], r_max=self.r_max, config=self.config.long_range,
                positions=batch[K.POSITIONS], total_charge=batch.get(K.TOTAL_CHARGE),
            )  # fmt: skip
            if large_free and self._compiled_network is not None:
                raise MLIPInputError(
                    f"structures {list(large_free)} are free and larger than the compiled long-range term sums "
                    "directly (Chebyshev-Tucker runs eagerly); use the eager model for them"
                )
            batch = {**batch, **plan}
        return energy_and_gradients(
            lambda vectors, positions, cell: network(
                vectors,
                species,
                batch,
                positions,
                cell,
                large_free,
                **({} if head is None else {"head": head}),
            ),
            batch,
            compute_forces=compute_forces,
            compute_stress=compute_stress,
            training=training,
        )
