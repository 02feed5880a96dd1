"""The ASE calculator: finite differences, periodic and free systems, relaxation, bad model files."""

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from mlip.calculators import MLIPCalculator, relax
from mlip.models import build_model, save_model
from mlip.models.io import FORMAT_VERSION


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(
        dict(
            name="mace",
            atomic_numbers=[1, 6, 8, 14],
            atomic_energies=[0, 0, 0, 0],
            r_max=4.0,
            channels=8,
            max_ell=2,
            max_L=1,
            correlation=2,
            radial_mlp=[8],
            avg_num_neighbors=10.0,
            dtype="float64",
        )
    )
    path = tmp_path_factory.mktemp("m") / "model.pt"
    save_model(model, path)
    return path


def test_forces_and_stress_match_ase_finite_differences(model_file):
    atoms = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    atoms.rattle(0.05, seed=1)
    atoms.calc = MLIPCalculator(model_file, dtype="float64")
    forces = atoms.get_forces()
    fd = calculate_numerical_forces(atoms, eps=1e-4)
    assert np.abs(forces - fd).max() < 1e-6 * np.abs(forces).max()
    stress = atoms.get_stress()
    fd_stress = calculate_numerical_stress(atoms, eps=1e-5)
    assert np.abs(stress - fd_stress).max() < 1e-6 * np.abs(stress).max()


def test_free_molecule(model_file):
    atoms = molecule("CH3OH")
    atoms.calc = MLIPCalculator(model_file)
    assert np.isfinite(atoms.get_potential_energy())
    assert atoms.get_forces().shape == (6, 3)
    assert atoms.get_potential_energy() == atoms.get_potential_energy(force_consistent=True)


def test_relax_with_cell(model_file):
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.05, seed=2)
    relaxed, ok = relax(atoms, MLIPCalculator(model_file), fmax=0.01, steps=2000, relax_cell=True)
    assert ok
    assert np.abs(relaxed.get_forces()).max() < 0.01


def test_corrupted_and_incompatible_model_files(tmp_path, model_file):
    import mlip

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable mlip model file"):
        mlip.load_model(bad)
    payload = torch.load(model_file, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match=f"format version 99; this mlip reads version {FORMAT_VERSION}"):
        mlip.load_model(tmp_path / "future.pt")
    payload["format_version"] = 1
    payload["config"]["channels"] = 16
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="weights do not match"):
        mlip.load_model(tmp_path / "mismatch.pt")
    with pytest.raises(FileNotFoundError):
        mlip.load_model(tmp_path / "missing.pt")


def test_unknown_element_in_calculator(model_file):
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = MLIPCalculator(model_file)
    with pytest.raises(ValueError, match="unknown element"):
        atoms.get_potential_energy()


@pytest.mark.parametrize(("built", "asked"), [(torch.float32, "float64"), (torch.float64, "float32")])
def test_a_module_in_another_dtype_runs_and_is_left_unchanged(built, asked):
    """Before the fix both directions failed ("expected scalar type Float but found Double") and converted the
    caller's module in place."""
    from mlip.testing.models import tiny_mace

    torch.manual_seed(0)
    module = tiny_mace(built, channels=4, max_ell=2, correlation=2)
    module.train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    atoms = bulk("Cu", "fcc", a=3.6) * (2, 2, 2)
    atoms.rattle(0.05, seed=0)
    atoms.calc = MLIPCalculator(module, dtype=asked)
    energy = atoms.get_potential_energy()
    assert next(atoms.calc.model.parameters()).dtype == getattr(torch, asked)
    assert next(module.parameters()).dtype == built
    assert module.training
    assert all(
        torch.equal(before[k], v) and before[k].dtype == v.dtype for k, v in module.state_dict().items()
    )
    reference = atoms.copy()
    reference.calc = MLIPCalculator(module)
    assert energy == pytest.approx(reference.get_potential_energy(), rel=1e-5)


def test_a_module_in_its_own_dtype_is_used_as_it_is():
    from mlip.testing.models import tiny_mace

    module = tiny_mace(torch.float64, channels=4, max_ell=2, correlation=2)
    calc = MLIPCalculator(module, dtype="float64")
    assert calc.model is module


def test_compiled_calculator_matches_eager_and_leaves_the_module_alone(model_file, compile_with_aot_eager):
    from mlip.models import load_model

    module = load_model(model_file)
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=1)
    results = []
    for calc in (MLIPCalculator(module), MLIPCalculator(module, compile=True)):
        atoms.calc = calc
        results.append((atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()))
    assert calc.model is not module
    assert module._compiled_network is None
    (e0, f0, s0), (e1, f1, s1) = results
    assert abs(e1 - e0) <= 1e-10 * abs(e0)
    np.testing.assert_allclose(f1, f0, rtol=0, atol=1e-10 * np.abs(f0).max())
    np.testing.assert_allclose(s1, s0, rtol=0, atol=1e-10 * np.abs(s0).max())


def test_neighbour_list_reuse_matches_fresh_lists_through_npt_md(model_file):
    """At every step of an NPT run (cell changing, atoms wrapped back across the faces) the reused Verlet list gives
    the energies, forces and stress of a freshly built one."""
    from ase import units
    from ase.md.nptberendsen import NPTBerendsen
    from ase.md.velocitydistribution import thermalize_momenta

    atoms = bulk("Si", "diamond", a=5.43) * (2, 2, 1)
    atoms.rattle(0.05, seed=3)
    thermalize_momenta(atoms, temperature_K=2000, rng=np.random.default_rng(0))
    reused = MLIPCalculator(model_file, skin=0.4)
    fresh = MLIPCalculator(model_file, skin=0.0)
    atoms.calc = reused
    dyn = NPTBerendsen(atoms, timestep=2 * units.fs, temperature_K=2000, pressure_au=-5e4 * units.bar,
                       taut=20 * units.fs, taup=50 * units.fs, compressibility_au=1e-6 / units.bar)  # fmt: skip
    cells = []
    for _ in range(25):
        dyn.run(1)
        atoms.wrap()
        cells.append(atoms.cell.array.copy())
        probe = atoms.copy()
        probe.calc = fresh
        e_ref, f_ref, s_ref = probe.get_potential_energy(), probe.get_forces(), probe.get_stress()
        assert atoms.get_potential_energy() == pytest.approx(e_ref, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(atoms.get_forces(), f_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(atoms.get_stress(), s_ref, rtol=1e-10, atol=1e-12)
    assert not np.allclose(cells[0], cells[-1])  # the cell did change
    assert fresh.nl_builds >= 25
    assert 1 < reused.nl_builds < 20, reused.nl_builds


def test_negative_skin_is_refused(model_file):
    from mlip.errors import MLIPInputError

    with pytest.raises(MLIPInputError, match="skin"):
        MLIPCalculator(model_file, skin=-0.1)
