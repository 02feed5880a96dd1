"""mlip-md: ensembles on both engines, energy conservation, resuming after an interruption, bad input."""

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.io import read, write

from mlip.cli.md import main as md_main
from mlip.models import save_model
from mlip.testing.models import tiny_mace


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("md") / "model.pt"
    save_model(tiny_mace(torch.float64, channels=4, max_ell=2, correlation=2), path)
    return str(path)


def cu(seed=0, a=3.7):
    atoms = bulk("Cu", "fcc", a=a, cubic=True) * (2, 1, 1)
    atoms.rattle(0.02, seed=seed)
    return atoms


def log_rows(path):
    lines = (path.parent / (path.name + ".log")).read_text().splitlines()
    assert lines[0].startswith("step,time_ps,system,epot_eV")
    return np.array([[float(x) for x in ln.split(",")] for ln in lines[1:]])


def test_nve_conserves_energy_and_writes_frames_and_log(tmp_path, model):
    write(tmp_path / "in.xyz", cu())
    out = tmp_path / "md.extxyz"
    argv = [str(tmp_path / "in.xyz"), str(out), "--model", model, "--steps", "60", "--interval", "10",
            "--timestep", "1", "--temperature", "300"]  # fmt: skip
    assert md_main(argv) == 0
    frames = read(out, ":")
    assert [a.info["md_step"] for a in frames] == [0, 10, 20, 30, 40, 50, 60]
    assert frames[-1].has("momenta")
    rows = log_rows(out)
    assert rows.shape == (7, 8)
    etot = rows[:, 5]
    assert np.ptp(etot) / len(frames[0]) < 2e-4  # eV/atom over 60 fs
    assert rows[0, 6] > 100  # started near 300 K
    assert md_main(argv) == 0  # a finished run is not redone


@pytest.mark.parametrize("engine", ["ase", "torchsim"])
def test_nve_continues_exactly_after_an_interruption(tmp_path, model, monkeypatch, engine):
    import mlip.cli.md as cli

    structures = [cu(0)] if engine == "ase" else [cu(0), cu(1, a=3.72)]
    write(tmp_path / "in.xyz", structures)
    base = [
        str(tmp_path / "in.xyz"),
        "--model",
        model,
        "--steps",
        "40",
        "--interval",
        "10",
        "--engine",
        engine,
    ]
    assert md_main([base[0], str(tmp_path / "whole.extxyz"), *base[1:]]) == 0
    original, writes = cli._write, []

    def interrupted(out, snapshots, step, settings):
        if step == 30:
            raise KeyboardInterrupt
        writes.append(step)
        original(out, snapshots, step, settings)

    monkeypatch.setattr(cli, "_write", interrupted)
    part = str(tmp_path / "part.extxyz")
    assert md_main([base[0], part, *base[1:]]) == 130
    monkeypatch.setattr(cli, "_write", original)
    assert md_main([base[0], part, *base[1:]]) == 0
    whole, resumed = read(tmp_path / "whole.extxyz", ":"), read(part, ":")
    assert [a.info["md_step"] for a in resumed] == [a.info["md_step"] for a in whole]
    for a, b in zip(whole, resumed):
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-8)
        np.testing.assert_allclose(b.get_momenta(), a.get_momenta(), atol=1e-8)
    assert log_rows(tmp_path / "part.extxyz").shape == log_rows(tmp_path / "whole.extxyz").shape
    assert md_main([base[0], part, *base[1:], "--temperature", "500"]) == 2  # another run: refused


@pytest.mark.parametrize("engine", ["ase", "torchsim"])
@pytest.mark.parametrize("ensemble", ["nvt", "npt"])
def test_thermostats_and_barostats_run(tmp_path, model, engine, ensemble):
    structures = [cu(0)] if engine == "ase" else [cu(0), cu(2, a=3.75)]
    write(tmp_path / "in.xyz", structures)
    out = tmp_path / "md.extxyz"
    argv = [str(tmp_path / "in.xyz"), str(out), "--model", model, "--steps", "30", "--interval", "10",
            "--ensemble", ensemble, "--temperature", "600", "--engine", engine, "--pdamp", "100"]  # fmt: skip
    assert md_main(argv) == 0
    frames = read(out, ":")
    assert len(frames) == 4 * len(structures)
    rows = log_rows(out)
    assert np.isfinite(rows[:, 7]).all()  # pressure of periodic cells
    if ensemble == "npt":
        assert not np.allclose(frames[0].cell.array, frames[-len(structures)].cell.array)


def test_torchsim_and_ase_nve_follow_the_same_trajectory(tmp_path, model):
    write(tmp_path / "in.xyz", cu(0))
    runs = {}
    for engine in ("ase", "torchsim"):
        out = tmp_path / f"{engine}.extxyz"
        argv = [str(tmp_path / "in.xyz"), str(out), "--model", model, "--steps", "20", "--interval", "10",
                "--engine", engine]  # fmt: skip
        assert md_main(argv) == 0
        runs[engine] = read(out, ":")
    for a, b in zip(runs["ase"], runs["torchsim"]):
        frac = (b.positions - a.positions) @ np.linalg.inv(a.cell.array)  # TorchSim wraps atoms into the cell
        np.testing.assert_allclose(frac - np.rint(frac), 0.0, atol=1e-8)
        np.testing.assert_allclose(b.get_momenta(), a.get_momenta(), atol=1e-8)
        assert b.info["md_epot"] == pytest.approx(a.info["md_epot"], abs=1e-8)


@pytest.mark.parametrize(
    ("extra", "structures", "message"),
    [
        (["--temperature", "-5"], "cu", "temperature must be >= 0 K"),
        (["--timestep", "0"], "cu", "time step must be > 0 fs"),
        (["--timestep", "500"], "cu", "implausible"),
        (["--ensemble", "npt"], "molecule", "NPT needs a cell periodic in all three directions"),
        ([], "unknown", "unknown element"),
        ([], "overlap", "overlapping atoms"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, model, capsys, extra, structures, message):
    atoms = {
        "cu": cu(0),
        "molecule": molecule("CH4"),
        "unknown": bulk("Si", "diamond", a=5.43),
        "overlap": cu(0),
    }
    atoms = atoms[structures]
    if structures == "overlap":
        atoms.positions[1] = atoms.positions[0] + 0.01
    write(tmp_path / "in.xyz", [cu(1), atoms])
    rc = md_main(
        [str(tmp_path / "in.xyz"), str(tmp_path / "md.extxyz"), "--model", model, "--steps", "5", *extra]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "md.extxyz").exists()


def test_a_kill_between_a_frame_and_its_log_line_loses_no_log_line(tmp_path, model, monkeypatch):
    """Issue 33 (9): the resumed log had steps 0 10 30 40 while the trajectory had 0 10 20 30 40."""
    import mlip.cli.md as cli

    write(tmp_path / "in.xyz", cu(0))
    out = tmp_path / "md.extxyz"
    argv = [str(tmp_path / "in.xyz"), str(out), "--model", model, "--steps", "40", "--interval", "10"]
    original = cli.append_bytes

    def dies_before_the_log_of_step_20(path, data):
        if path.name.endswith(".log") and data.startswith(b"20,"):
            raise KeyboardInterrupt  # as a kill -9 right after the frame of step 20 was appended
        original(path, data)

    monkeypatch.setattr(cli, "append_bytes", dies_before_the_log_of_step_20)
    assert md_main(argv) == 130
    monkeypatch.setattr(cli, "append_bytes", original)
    assert md_main(argv) == 0
    steps = [a.info["md_step"] for a in read(out, ":")]
    assert steps == [0, 10, 20, 30, 40]
    rows = log_rows(out)
    assert rows[:, 0].tolist() == steps
    frame20 = read(out, 2)
    assert rows[2, 3] == pytest.approx(frame20.info["md_epot"], abs=1e-9)


def _fixed_slabs(n):
    from ase.build import fcc111
    from ase.constraints import FixAtoms

    slabs = []
    for seed in range(n):
        slab = fcc111("Cu", size=(2, 2, 3), vacuum=5.0)
        slab.pbc = True  # as the reproduction: a slab written with pbc=True
        slab.rattle(0.02, seed=seed)
        slab.set_constraint(FixAtoms(indices=[a.index for a in slab if a.tag == 3]))  # the bottom layer
        slabs.append(slab)
    return slabs


@pytest.mark.parametrize(("engine", "n"), [("torchsim", 2), ("ase", 1)])
def test_fixed_atoms_stay_fixed(tmp_path, model, engine, n):
    """Issue 33 (2): the TorchSim engine moved FixAtoms atoms by 0.06-0.09 Å in 50 fs of NVT at 600 K."""
    slabs = _fixed_slabs(n)
    write(tmp_path / "in.extxyz", slabs)
    out = tmp_path / "md.extxyz"
    argv = [str(tmp_path / "in.extxyz"), str(out), "--model", model, "--ensemble", "nvt", "--temperature", "600",
            "--steps", "50", "--interval", "10", "--engine", engine]  # fmt: skip
    assert md_main(argv) == 0
    frames = read(out, ":")
    assert frames[-1].constraints  # the output still says which atoms are fixed
    for frame in frames:
        k = frame.info["md_system"]
        held = slabs[k].constraints[0].get_indices()
        free = np.setdiff1d(np.arange(len(frame)), held)
        np.testing.assert_allclose(
            frame.positions[held], slabs[k].positions[held], rtol=0, atol=1e-7
        )  # extxyz digits
        assert np.abs(frame.get_momenta()[held]).max() == 0.0
        if frame.info["md_step"] == 50:
            assert np.abs(frame.positions[free] - slabs[k].positions[free]).max() > 0.01  # the others move


def test_fixed_atoms_in_npt_on_torchsim_are_refused(tmp_path, model, capsys):
    write(tmp_path / "in.extxyz", _fixed_slabs(2))
    argv = [str(tmp_path / "in.extxyz"), str(tmp_path / "md.extxyz"), "--model", model, "--ensemble", "npt",
            "--steps", "10"]  # fmt: skip
    assert md_main(argv) == 2
    assert "NPT with fixed atoms" in capsys.readouterr().err


def test_a_finished_run_is_extended_by_a_larger_steps(tmp_path, model):
    """Issue 33 (noticed): a finished mlip-md run could not be extended to more steps."""
    write(tmp_path / "in.xyz", cu())
    base = [str(tmp_path / "in.xyz"), "--model", model, "--interval", "10", "--ensemble", "nve"]
    assert md_main([base[0], str(tmp_path / "long.extxyz"), *base[1:], "--steps", "40"]) == 0
    assert md_main([base[0], str(tmp_path / "md.extxyz"), *base[1:], "--steps", "20"]) == 0
    assert md_main([base[0], str(tmp_path / "md.extxyz"), *base[1:], "--steps", "40"]) == 0
    long, extended = read(tmp_path / "long.extxyz", ":"), read(tmp_path / "md.extxyz", ":")
    assert [a.info["md_step"] for a in extended] == [0, 10, 20, 30, 40]
    for a, b in zip(long, extended):
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-7)
    assert log_rows(tmp_path / "md.extxyz")[:, 0].tolist() == [0, 10, 20, 30, 40]
