"""Real Clebsch–Gordan coefficients and spherical harmonics in e3nn's real basis.

``clebsch_gordan(l1, l2, l3)`` returns the real Wigner 3j symbol ``C[m1, m2, m3]`` of e3nn, normalised to unit
Frobenius norm, ``sum C**2 = 1``. It is the unique (up to sign) tensor with

.. math::  C_{m_1 m_2 m_3} = \\sum D^{l_1}_{m_1 n_1}(R) D^{l_2}_{m_2 n_2}(R) D^{l_3}_{m_3 n_3}(R) C_{n_1 n_2 n_3}

for every rotation R. Spherical harmonics use e3nn's ``component`` normalisation: ``sum_m Y_lm(r)^2 = 2l + 1``.
"""

from __future__ import annotations

from functools import cache

import torch
from e3nn import o3

from mlip.kernels.legendre import high_degree_harmonics

_FIXED_ROTATIONS_SEED = 20221206
#: e3nn tabulates spherical harmonics and Clebsch–Gordan tensors up to this degree
E3NN_LMAX = 12


__all__ = ["wigner_d_l", "clebsch_gordan", "spherical_harmonics", "wigner_d", "E3NN_LMAX"]


@cache
def _fixed_rotations() -> torch.Tensor:
    """Two deterministic generic rotations ``[2, 3, 3]`` (float64) used to pin down invariant tensors."""
    g = torch.Generator().manual_seed(_FIXED_ROTATIONS_SEED)
    q, _ = torch.linalg.qr(torch.randn(2, 3, 3, generator=g, dtype=torch.float64))
    return q * torch.det(q)[:, None, None]


def _harmonics_of_degree(l: int, x: torch.Tensor) -> torch.Tensor:
    if l <= E3NN_LMAX:
        return o3.spherical_harmonics(l, x, normalize=True, normalization="component")
    return high_degree_harmonics(l, x)


def wigner_d_l(l: int, rotation: torch.Tensor) -> torch.Tensor:
    """Real Wigner D matrix ``[2l+1, 2l+1]`` of a proper ``rotation`` in the spherical-harmonic basis.

    Defined by ``Y_l(R x) = D^l(R) Y_l(x)`` and computed from that identity by least squares over
    ``4(2l+1)`` fixed directions, which is exact to float64 rounding (e3nn's tabulated D and 3j symbols are
    accurate to about 1e-7 only, too coarse for 1e-10 equivariance tests).
    """
    rotation = rotation.to(torch.float64)
    g = torch.Generator().manual_seed(l + 1)
    x = torch.randn(4 * (2 * l + 1), 3, generator=g, dtype=torch.float64)
    y = _harmonics_of_degree(l, x)
    y_rot = _harmonics_of_degree(l, x @ rotation.T)
    return torch.linalg.lstsq(y, y_rot).solution.T


@cache
def _cg64(l1: int, l2: int, l3: int) -> torch.Tensor:
    """The invariant tensor of ``l1⊗l2⊗l3``: the common fixed vector of ``D(R) = D1(R) ⊗ D2(R) ⊗ D3(R)`` for two
    generic rotations ``R``.

    Each ``D(R)`` is orthogonal, so ``Σ_R |D(R) c - c|² = cᵀ G c`` with ``G = Σ_R (2 - D(R) - D(R)ᵀ)``: ``c`` is the
    eigenvector of ``G``'s smallest eigenvalue (zero), and the next one must be clearly positive (one invariant).
    Only the two lowest eigenpairs are computed (LAPACK ``syevr``), about eight times faster than the full SVD of
    the stacked ``D(R) - 1`` at ``l ≈ 6``; the result is checked against ``D(R) c = c`` to 1e-10.
    Normalised to unit Frobenius norm; the sign follows e3nn's ``wigner_3j``.
    """
    import scipy.linalg

    blocks = []
    for rot in _fixed_rotations():
        d = [wigner_d_l(l, rot) for l in (l1, l2, l3)]
        blocks.append(torch.kron(torch.kron(d[0], d[1]), d[2]))
    dim = blocks[0].shape[0]
    gram = sum(2.0 * torch.eye(dim, dtype=torch.float64) - b - b.T for b in blocks)
    values, vectors = scipy.linalg.eigh(gram.numpy(), subset_by_index=[0, min(1, dim - 1)])
    c = torch.from_numpy(vectors[:, 0].copy())
    residual = max(float((b @ c - c).abs().max()) for b in blocks)
    if residual > 1e-10 or (dim > 1 and values[1] < 1e-8):
        raise RuntimeError(f"CG {l1}x{l2}->{l3}: no single invariant (residual {residual:.1e}, {values[:2]})")
    c = c.reshape(2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1)
    if max(l1, l2, l3) <= E3NN_LMAX:
        sign = torch.sign((c * o3.wigner_3j(l1, l2, l3, dtype=torch.float64)).sum())
    else:  # no e3nn reference: make the largest entry positive
        flat = c.flatten()
        sign = torch.sign(flat[flat.abs().argmax()])
    return c * sign / c.norm()


def clebsch_gordan(l1: int, l2: int, l3: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Real coupling coefficients, shape ``[2l1+1, 2l2+1, 2l3+1]``, unit Frobenius norm (a fresh copy)."""
    if not abs(l1 - l2) <= l3 <= l1 + l2:
        raise ValueError(f"no coupling {l1} x {l2} -> {l3}: need |l1 - l2| <= l3 <= l1 + l2")
    return _cg64(l1, l2, l3).to(dtype).clone()


def spherical_harmonics(lmax: int, vectors: torch.Tensor) -> torch.Tensor:
    """Real spherical harmonics of the directions of ``vectors``.

    Args:
        lmax: highest degree.
        vectors: ``[..., 3]`` Cartesian vectors (any length > 0; they are normalised).

    Returns:
        ``[..., (lmax + 1)**2]``, blocks ``l = 0..lmax`` in order, component normalisation. Degrees up to
        :data:`E3NN_LMAX` are e3nn's; higher ones come from :mod:`mlip.kernels.legendre`.
    """
    low = min(lmax, E3NN_LMAX)
    y = o3.spherical_harmonics(list(range(low + 1)), vectors, normalize=True, normalization="component")
    if lmax <= E3NN_LMAX:
        return y
    return torch.cat(
        [y] + [high_degree_harmonics(l, vectors) for l in range(E3NN_LMAX + 1, lmax + 1)], dim=-1
    )


def wigner_d(irreps, rotation: torch.Tensor) -> torch.Tensor:
    """Block-diagonal representation matrix ``[dim, dim]`` of ``rotation`` (``[3, 3]``, det ±1) on ``irreps``.

    An improper ``rotation`` (det = -1) is inversion times a proper rotation: odd-parity blocks change sign.
    """
    det = torch.det(rotation.to(torch.float64))
    proper = rotation.to(torch.float64) * det
    blocks = []
    for ir in irreps:
        parity = -1.0 if (ir.p == -1 and det < 0) else 1.0
        blocks.append(parity * wigner_d_l(ir.l, proper))
    return torch.block_diag(*blocks).to(rotation.dtype)
