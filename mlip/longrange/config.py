"""Typed configuration of a model's long-range term (``long_range:`` in a model config)."""

from __future__ import annotations

from dataclasses import dataclass

from mlip.errors import MLIPInputError
from mlip.fields import check_fields
from mlip.longrange.api import Method

__all__ = ["LongRangeConfig"]


@dataclass(frozen=True, kw_only=True)
class LongRangeConfig:
    """Learned charges and their Coulomb energy, added to a backbone's energy.

    Attributes:
        kind: ``"auto"`` (Ewald for periodic cells; direct sum for free structures up to 5,000 atoms, then
            Chebyshev–Tucker), or ``"ewald"``, ``"chebyshev_tucker"``, ``"direct"`` for every structure (a kind
            that cannot handle a structure's periodicity raises).
        sigma: range-separation width in Å; ``None`` picks one per structure (the energy does not depend on it,
            only the cost of reaching ``accuracy`` does).
        accuracy: relative accuracy of the Coulomb sums.
        charge_hidden: hidden width of the charge head (an MLP of the last layer's invariant features).
    """

    kind: str = "auto"
    sigma: float | None = None
    accuracy: float = 1e-6
    charge_hidden: int = 16

    def __post_init__(self) -> None:
        check_fields(self, "model.long_range")
        choices = [m.value for m in Method]
        if self.kind not in choices:
            raise MLIPInputError(f"model.long_range.kind must be one of {choices}, got {self.kind!r}")
        if not 0.0 < self.accuracy < 1.0:
            raise MLIPInputError(f"model.long_range.accuracy must lie in (0, 1), got {self.accuracy}")
        if self.sigma is not None and not self.sigma > 0:
            raise MLIPInputError(f"model.long_range.sigma must be positive (Å) or null, got {self.sigma}")
        if self.charge_hidden < 1:
            raise MLIPInputError(f"model.long_range.charge_hidden must be >= 1, got {self.charge_hidden}")

    @classmethod
    def from_dict(cls, raw: dict) -> LongRangeConfig:
        allowed = {"kind", "sigma", "accuracy", "charge_hidden"}
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise MLIPInputError(
                f"unknown long_range option(s) {unknown} in the model section; allowed: {sorted(allowed)}"
            )
        return cls(**raw)
