"""Irreducible representations of O(3), as small immutable objects.

mlip stores equivariant features channel-last, ``[..., dim, channels]`` (cuEquivariance's ``ir_mul`` layout):
every irrep of an :class:`Irreps` carries the same number of channels, which lives in the last axis. An
:class:`Irreps` therefore lists irreps *without* multiplicities; a repeated irrep (``"0e+0e"``) is allowed and
means two blocks.

The real basis is e3nn's (``l = 1`` components ordered ``y, z, x``), so that spherical harmonics and
Clebsch–Gordan coefficients from :mod:`mlip.kernels.cg` agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlip.kernels.cached import cached_property

_IRREP_RE = re.compile(r"^\s*(?:(\d+)\s*x\s*)?(\d+)\s*([eo])\s*$")


__all__ = ["Irrep", "Irreps", "parse_hidden_irreps"]


@dataclass(frozen=True, order=True)
class Irrep:
    """One irrep of O(3): degree ``l >= 0`` and parity ``p = +1`` (even, ``e``) or ``-1`` (odd, ``o``)."""

    l: int
    p: int

    def __post_init__(self) -> None:
        if self.l < 0 or self.p not in (1, -1):
            raise ValueError(f"invalid irrep l={self.l}, p={self.p}: need l >= 0 and p in (+1, -1)")

    @property
    def dim(self) -> int:
        """``2l + 1``."""
        return 2 * self.l + 1

    def __mul__(self, other: Irrep) -> list[Irrep]:
        """Irreps in the tensor product ``self ⊗ other``: ``|l1 - l2| <= l <= l1 + l2``, parity ``p1 p2``."""
        p = self.p * other.p
        return [Irrep(l, p) for l in range(abs(self.l - other.l), self.l + other.l + 1)]

    def __str__(self) -> str:
        return f"{self.l}{'e' if self.p == 1 else 'o'}"

    @classmethod
    def parse(cls, text: str) -> Irrep:
        """``"1o"`` -> ``Irrep(1, -1)``."""
        m = _IRREP_RE.match(text)
        if m is None or m.group(1) is not None:
            raise ValueError(f"cannot parse irrep {text!r}; expected e.g. '0e' or '1o'")
        return cls(int(m.group(2)), 1 if m.group(3) == "e" else -1)


class Irreps(tuple):
    """An ordered tuple of :class:`Irrep`, each block sharing the channel axis (see the module docstring).

    >>> Irreps("0e+1o+2e").dim
    9
    """

    def __new__(cls, irreps: str | Irreps | list[Irrep] | tuple[Irrep, ...] = ()) -> Irreps:
        if isinstance(irreps, str):
            items = [Irrep.parse(s) for s in irreps.split("+") if s.strip()]
        else:
            items = [ir if isinstance(ir, Irrep) else Irrep(*ir) for ir in irreps]
        new = super().__new__(cls, items)
        _ = (
            new.dim,
            new.offsets,
        )  # computed now: the objects are immutable and often read inside compiled code
        return new

    @classmethod
    def spherical_harmonics(cls, lmax: int) -> Irreps:
        """``0e + 1o + 2e + ... + lmax``: the natural-parity irreps of the spherical harmonics."""
        return cls([Irrep(l, (-1) ** l) for l in range(lmax + 1)])

    @cached_property
    def dim(self) -> int:
        """Number of components per channel, ``sum(2l + 1)``."""
        return sum(ir.dim for ir in self)

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        """Start of each block along the ``dim`` axis (length ``len(self) + 1``)."""
        out = [0]
        for ir in self:
            out.append(out[-1] + ir.dim)
        return tuple(out)

    def slices(self) -> list[slice]:
        """One ``slice`` per block along the ``dim`` axis."""
        return [slice(a, b) for a, b in zip(self.offsets[:-1], self.offsets[1:])]

    @property
    def lmax(self) -> int:
        return max(ir.l for ir in self)

    def __str__(self) -> str:
        return "+".join(str(ir) for ir in self)

    def __repr__(self) -> str:
        return f"Irreps('{self}')"

    def __add__(self, other: Irreps) -> Irreps:  # type: ignore[override]
        return Irreps(list(self) + list(other))


def parse_hidden_irreps(text: str) -> tuple[int, Irreps]:
    """Parse MACE-style hidden irreps such as ``"128x0e+128x1o"`` into ``(128, Irreps("0e+1o"))``.

    Every block must carry the same multiplicity (the channel axis is shared).
    """
    muls, irs = [], []
    for part in text.split("+"):
        m = _IRREP_RE.match(part)
        if m is None:
            raise ValueError(
                f"cannot parse {part!r} in hidden irreps {text!r}; expected e.g. '128x0e+128x1o'"
            )
        muls.append(int(m.group(1) or 1))
        irs.append(Irrep(int(m.group(2)), 1 if m.group(3) == "e" else -1))
    if len(set(muls)) != 1:
        raise ValueError(f"hidden irreps {text!r} must have one multiplicity for every irrep, got {muls}")
    return muls[0], Irreps(irs)
