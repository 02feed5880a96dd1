"""TDN: a MACE-like backbone whose message products are CP-factored (Tensor Decomposition Networks, Lin et al.,
NeurIPS 2025, arXiv 2507.01131).

The TDN paper puts its CP products into an Equiformer-style attention block. Here the same products sit in
MACE's block instead (:class:`~mlip.models.mace.MACE` with ``tensor_product = "cp"``):

.. math::  A_i = \\mathrm{Linear}\\Big(\\frac{1}{\\bar n}\\sum_j C\\big[(A^T u_{ij}⊙h_j) ⊙ (B^T v_{ij}⊙Y(\\hat r_{ij}))\\big]\\Big),
           \\qquad h_i \\leftarrow \\mathrm{Linear}(B(A_i, z_i)) + W_{z_i} h_i

with one shared set of per-degree weights ``u, v`` for all paths (path-weight sharing) and rank-``R`` factors
``A, B, C`` of the coupling tensor (``cp_rank``, default ``7 L^2``; fitted by seeded CP-ALS, stored in the model
file). The product basis ``B`` stays MACE's symmetric contraction (or the Gaunt basis). Two reasons for the
MACE-like block:

* The many-body product basis already gives body order at a low cost, so attention is not needed for accuracy
  on molecules and crystals of this size.
* TDN, MACE and the Gaunt variants then differ only in the message product. Their speed and accuracy
  difference measures that product, which is what users choosing a backbone need to know.

The fit error of the factors is measured (``benchmarks/cp_rank.py``): with the default rank on MACE-sized
couplings the model is equivariant to about 1e-8 relative, and exactly so once the rank reaches the number of
non-zero fibres.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlip.errors import MLIPInputError
from mlip.models.config import MACEConfig
from mlip.models.mace import MACE

__all__ = ["TDNConfig", "TDN"]


@dataclass(frozen=True, kw_only=True)
class TDNConfig(MACEConfig):
    """:class:`~mlip.models.config.MACEConfig` with ``tensor_product`` fixed to ``"cp"``; ``cp_rank`` sets the
    rank (default ``7 L^2`` with ``L`` the largest degree of the coupling)."""

    name: str = "tdn"
    tensor_product: str = "cp"

    def __post_init__(self) -> None:
        if self.tensor_product != "cp":
            raise MLIPInputError(
                f"a TDN's tensor_product is 'cp', got {self.tensor_product!r} (use name 'mace')"
            )
        super().__post_init__()


class TDN(MACE):
    """The TDN potential of the module docstring; same inputs and outputs as :class:`~mlip.models.mace.MACE`."""

    def __init__(self, config: TDNConfig) -> None:
        super().__init__(config)
