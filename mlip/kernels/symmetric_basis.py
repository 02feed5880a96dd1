"""Basis of the equivariant symmetric polynomials used by the MACE product (symmetric contraction).

For input features ``A`` with per-channel irreps ``V = ⊕_s V_{l_s p_s}`` (dimension ``D``), degree ``ν`` and an
output irrep ``L``, we need a basis of the linear maps ``Sym^ν(V) -> V_L`` that commute with O(3). Since
``A^{⊗ν}`` is symmetric, such a map is a linear form on the *monomials* ``P_t = A_{t_1} ... A_{t_ν}`` with
``t_1 <= ... <= t_ν``; we store each basis element as ``U[M, t]``.

Construction (deterministic, no SVD, so the same basis comes out on every machine):

1. for every block multiset ``s_1 <= ... <= s_ν`` couple the blocks left to right with real CG coefficients
   through every intermediate irrep, ``((l_1 ⊗ l_2) -> l_12) ⊗ l_3 -> ... -> L`` (parity ``prod p_s`` must match).
   For one block multiset these coupling trees span ``Hom(V_{s_1} ⊗ ... ⊗ V_{s_ν}, V_L)``, so together they span
   every symmetric equivariant map.
2. scale each candidate tensor ``T[a_1..a_ν, M]`` to Frobenius norm ``sqrt(2L + 1)`` and accumulate it onto the
   monomial of its sorted component indices (this *is* the symmetrisation);
3. keep a candidate only when it is linearly independent of those kept before (Gram–Schmidt residual above
   ``1e-8`` relative to its norm before symmetrisation); antisymmetric couplings (e.g. ``1o ⊗ 1o -> 1e``) vanish here.

The number of kept elements per ``(ν, L)`` is the number of free weights per channel and element. Compared with
MACE's ``U_matrix_real`` this basis has no linearly dependent (redundant) weights.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from mlip.kernels.cg import clebsch_gordan
from mlip.kernels.irreps import Irrep, Irreps

__all__ = ["SymmetricBasis", "monomials", "symmetric_basis"]


@dataclass(frozen=True)
class SymmetricBasis:
    """Basis for one ``(ν, L)``.

    Attributes:
        degree: ν.
        ir_out: the output irrep L.
        monomials: ``[T, ν]`` int64, sorted component indices of each monomial.
        U: ``[2L+1, T, n_basis]`` float64 coefficients.
    """

    degree: int
    ir_out: Irrep
    monomials: torch.Tensor
    U: torch.Tensor

    @property
    def num_basis(self) -> int:
        return self.U.shape[-1]


def _coupling_trees(blocks: tuple[Irrep, ...]) -> list[tuple[Irrep, torch.Tensor]]:
    """All left-to-right couplings of ``blocks``: ``(ir, T[d_1, ..., d_ν, 2l+1])``."""
    first = blocks[0]
    trees = [(first, torch.eye(first.dim, dtype=torch.float64))]
    for nxt in blocks[1:]:
        new = []
        for ir_mid, t in trees:
            for ir in ir_mid * nxt:
                cg = clebsch_gordan(ir_mid.l, nxt.l, ir.l)
                new.append((ir, torch.tensordot(t, cg, dims=([t.dim() - 1], [0]))))
        trees = new
    return trees


def monomials(dim: int, degree: int) -> torch.Tensor:
    """``[T, degree]`` int64: every sorted index tuple, in lexicographic order."""
    return torch.tensor(list(itertools.combinations_with_replacement(range(dim), degree)), dtype=torch.int64)


@lru_cache(maxsize=64)
def symmetric_basis(irreps_in: Irreps, degree: int, ir_out: Irrep) -> SymmetricBasis:
    """The basis of the module docstring for ``Sym^degree(irreps_in) -> ir_out``."""
    dim = irreps_in.dim
    mono = monomials(dim, degree)
    # lookup table: flat index of a sorted tuple -> monomial number
    strides = torch.tensor([dim**k for k in reversed(range(degree))])
    lookup = torch.full((dim**degree,), -1, dtype=torch.int64)
    lookup[(mono * strides).sum(-1)] = torch.arange(len(mono))

    kept: list[torch.Tensor] = []
    ortho: list[torch.Tensor] = []
    offsets = irreps_in.offsets
    for combo in itertools.combinations_with_replacement(range(len(irreps_in)), degree):
        blocks = tuple(irreps_in[s] for s in combo)
        grids = torch.meshgrid(*[torch.arange(offsets[s], offsets[s + 1]) for s in combo], indexing="ij")
        flat_idx = torch.stack([g.reshape(-1) for g in grids], -1).sort(-1).values
        mono_idx = lookup[(flat_idx * strides).sum(-1)]
        for ir, t in _coupling_trees(blocks):
            if ir != ir_out:
                continue
            t = t * (math.sqrt(ir.dim) / t.norm())
            u = torch.zeros(ir.dim, len(mono), dtype=torch.float64)
            u.index_add_(1, mono_idx, t.reshape(-1, ir.dim).T)
            v = u.reshape(-1)
            r = v.clone()
            for q in ortho:
                r -= (q @ r) * q
            if r.norm() > 1e-8 * math.sqrt(ir.dim):  # relative to the candidate's norm before symmetrisation
                ortho.append(r / r.norm())
                kept.append(u)
    U = torch.stack(kept, -1) if kept else torch.zeros(ir_out.dim, len(mono), 0, dtype=torch.float64)
    # entries that are rounding noise of cancelling CG products are exact zeros: the sparsity pattern (which
    # monomials a basis uses) must not depend on the last bits of float64 arithmetic
    U = torch.where(U.abs() < 1e-13, torch.zeros_like(U), U)
    return SymmetricBasis(degree=degree, ir_out=ir_out, monomials=mono, U=U)
