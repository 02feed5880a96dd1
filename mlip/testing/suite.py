"""A reusable pytest suite: subclass :class:`ModelPhysicsSuite`, define ``make_model(dtype)`` and the elements
it covers, and every physics check of :mod:`mlip.testing.physics` runs against your model.

Example::

    class TestMyModel(ModelPhysicsSuite):
        def make_model(self, dtype):
            return build_model({...,"dtype": str(dtype).replace("torch.", "")})
"""

from __future__ import annotations

import pytest
import torch

from mlip.testing import physics
from mlip.testing.structures import cu_au_bulk, cu_slab, cu_small_cell, methanol_like

EQUIVARIANCE_TOL_F64 = 1e-10
FD_TOL_F64 = 1e-6
EQUIVARIANCE_TOL_F32 = 1e-4


__all__ = ["ModelPhysicsSuite", "EQUIVARIANCE_TOL_F64", "FD_TOL_F64", "EQUIVARIANCE_TOL_F32"]


class ModelPhysicsSuite:
    """Physics checks in float64 (tight) and float32 (loose). Models must support H, C, O, Cu and Au.

    Set ``mixed_pbc = False`` for a model that rejects structures periodic in only some directions; its slab checks
    then check that rejection (a ``ValueError`` naming the periodicity) instead
    of the symmetry, and the free molecule still runs.
    """

    mixed_pbc: bool = True
    equivariance_tol_f64: float = EQUIVARIANCE_TOL_F64
    """Relative tolerance of the float64 symmetry checks (a subclass may tighten it)."""

    def _structure(self, model, make):
        """``make()``, or ``None`` after checking that the model rejects it (a slab, when ``mixed_pbc`` is off)."""
        if make is cu_slab and not self.mixed_pbc:
            with pytest.raises(ValueError, match="periodicity"):
                physics.predict(model, [make()])
            return None
        return make()

    def make_model(self, dtype: torch.dtype):  # pragma: no cover - overridden
        raise NotImplementedError("subclasses return a model of the given dtype")

    @pytest.fixture
    def model64(self):
        torch.manual_seed(0)
        return self.make_model(torch.float64)

    @pytest.fixture
    def model32(self):
        torch.manual_seed(0)
        return self.make_model(torch.float32)

    @pytest.mark.parametrize("structure", [cu_au_bulk, cu_slab, cu_small_cell, methanol_like])
    @pytest.mark.parametrize("check", ["rotation", "reflection", "translation", "permutation"])
    def test_symmetry_float64(self, model64, structure, check):
        atoms = self._structure(model64, structure)
        if atoms is None:
            return
        err = getattr(physics, f"{check}_error")(model64, atoms)
        assert err < self.equivariance_tol_f64, f"{check} error {err:.2e} on {structure.__name__}"

    @pytest.mark.parametrize("check", ["rotation", "reflection", "translation", "permutation"])
    def test_symmetry_float32(self, model32, check):
        err = getattr(physics, f"{check}_error")(model32, cu_au_bulk())
        assert err < EQUIVARIANCE_TOL_F32, f"{check} error {err:.2e} in float32"

    @pytest.mark.parametrize("structure", [cu_au_bulk, cu_slab, methanol_like])
    def test_forces_finite_differences(self, model64, structure):
        atoms = self._structure(model64, structure)
        if atoms is None:
            return
        err = physics.force_fd_error(model64, atoms)
        assert err < FD_TOL_F64, f"forces vs central differences: {err:.2e}"

    @pytest.mark.parametrize("structure", [cu_au_bulk, cu_small_cell])
    def test_stress_finite_differences(self, model64, structure):
        err = physics.stress_fd_error(model64, self._structure(model64, structure))
        assert err < FD_TOL_F64, f"stress vs central differences: {err:.2e}"

    def test_batch_equals_single(self, model64):
        err = physics.batch_error(model64, [cu_au_bulk(0), cu_au_bulk(1, repeat=2), cu_small_cell()])
        assert err < 1e-12, f"batch vs single: {err:.2e}"

    def test_cutoff_smoothness(self, model64):
        e_ratio, f_ratio = physics.cutoff_smoothness(model64, 29, delta=1e-3)
        assert e_ratio < 1e-8, f"energy at r_max - 1e-3 Å: {e_ratio:.2e} of the contact value"
        assert f_ratio < 1e-5, f"force at r_max - 1e-3 Å: {f_ratio:.2e} of the contact value"

    def test_cutoff_continuity(self, model64):
        e_jump, f_jump = physics.cutoff_continuity(model64, 29, 79, delta=1e-5)
        assert e_jump < 1e-3, f"energy jump across r_max: {e_jump:.2e} of the contact value"
        assert f_jump < 1e-3, f"force jump across r_max: {f_jump:.2e} of the contact value"

    def test_float32_matches_float64(self, model32, model64):
        model32_as64 = self.make_model(torch.float64)
        model32_as64.load_state_dict(
            {k: v.double() if v.is_floating_point() else v for k, v in model32.state_dict().items()}
        )
        a = physics.predict(model32, [cu_au_bulk()])[0]
        b = physics.predict(model32_as64, [cu_au_bulk()])[0]
        assert abs(a["energy"] - b["energy"]) <= 1e-4 * max(1.0, abs(b["energy"]))
        assert abs(a["forces"] - b["forces"]).max() <= 1e-3 * max(1.0, abs(b["forces"]).max())
