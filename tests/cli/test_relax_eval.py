"""The console scripts mlip-relax and mlip-eval, called through their main() as the entry points do."""

import json

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from mlip.cli.eval import main as eval_main
from mlip.cli.relax import main as relax_main
from mlip.models import save_model
from mlip.testing.models import tiny_mace


def _model_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    save_model(tiny_mace(torch.float64, channels=4, max_ell=2, correlation=2), path)
    return path


def _labelled_cu(n, *, energy, forces):
    """``n`` rattled 4-atom Cu cells (a = 3.6 Å, seeds 0..n-1) labelled ``energy(seed)``, ``forces(seed)``."""
    frames = []
    for seed in range(n):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.rattle(0.05, seed=seed)
        a.calc = SinglePointCalculator(a, energy=energy(seed), forces=forces(seed))
        frames.append(a)
    return frames


def test_mlip_relax_writes_relaxed_structures(tmp_path):
    model = _model_file(tmp_path)
    frames = []
    for seed in range(2):
        a = bulk("Cu", "fcc", a=3.7, cubic=True)
        a.rattle(0.05, seed=seed)
        frames.append(a)
    write(tmp_path / "in.xyz", frames)
    rc = relax_main(
        [
            str(tmp_path / "in.xyz"),
            str(tmp_path / "out.xyz"),
            "--model",
            str(model),
            "--fmax",
            "0.02",
            "--steps",
            "1000",
            "--relax-cell",
        ]
    )
    assert rc == 0
    out = read(tmp_path / "out.xyz", ":")
    assert len(out) == 2
    assert all(np.abs(a.get_forces()).max() < 0.02 for a in out)


def test_mlip_eval_writes_metric_keys(tmp_path):
    model = _model_file(tmp_path)
    frames = _labelled_cu(3, energy=lambda seed: -1.0 * seed, forces=lambda seed: np.zeros((4, 3)))
    write(tmp_path / "labelled.xyz", frames)
    rc = eval_main(["--model", str(model), str(tmp_path / "labelled.xyz"), "--out", str(tmp_path / "m.json")])
    assert rc == 0
    metrics = json.loads((tmp_path / "m.json").read_text())["labelled.xyz"]
    assert metrics["n_frames"] == 3
    assert {"energy_rmse_mev_per_atom", "forces_rmse_mev_per_A", "forces_mae_mev_per_A"} <= set(metrics)


def test_mlip_eval_compiled_gives_the_eager_metrics(tmp_path, compile_with_aot_eager):
    model = _model_file(tmp_path)
    frames = _labelled_cu(
        3, energy=lambda seed: -14.0 + 0.1 * seed, forces=lambda seed: np.full((4, 3), 0.01 * seed)
    )
    write(tmp_path / "labelled.xyz", frames)
    args = ["--model", str(model), str(tmp_path / "labelled.xyz"), "--out"]
    assert eval_main([*args, str(tmp_path / "eager.json")]) == 0
    assert eval_main([*args, str(tmp_path / "compiled.json"), "--compile"]) == 0
    eager = json.loads((tmp_path / "eager.json").read_text())["labelled.xyz"]
    compiled = json.loads((tmp_path / "compiled.json").read_text())["labelled.xyz"]
    assert set(eager) == set(compiled)
    for key, value in eager.items():
        assert compiled[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


def _cells(n, bad=()):
    frames = []
    for seed in range(n):
        a = bulk("Cu", "fcc", a=3.7, cubic=True)
        a.rattle(0.05, seed=seed)
        if seed in bad:
            a.positions[2] = a.positions[1] + 0.01  # overlapping atoms
        frames.append(a)
    return frames


@pytest.mark.parametrize("engine", ["ase", "torchsim"])
def test_mlip_relax_skips_a_bad_frame_and_keeps_the_others(tmp_path, capsys, engine):
    model = _model_file(tmp_path)
    write(tmp_path / "in.xyz", _cells(4, bad=(1,)))
    rc = relax_main(
        [str(tmp_path / "in.xyz"), str(tmp_path / "out.xyz"), "--model", str(model), "--steps", "200",
         "--engine", engine]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1
    assert "in.xyz[1] skipped" in err
    assert "overlapping" in err
    out = read(tmp_path / "out.xyz", ":")
    assert [a.info["relax_index"] for a in out] == [0, 2, 3]
    assert all(a.info["relax_converged"] for a in out)
    assert not list(tmp_path.glob("out.xyz.partial*"))


def test_mlip_relax_continues_after_an_interruption(tmp_path, monkeypatch):
    import mlip.cli.relax as cli

    model = _model_file(tmp_path)
    write(tmp_path / "in.xyz", _cells(4))
    argv = [str(tmp_path / "in.xyz"), str(tmp_path / "out.traj"), "--model", str(model), "--steps", "200",
            "--engine", "ase"]  # fmt: skip
    original, calls = cli.relax, []

    def interrupted(atoms, *args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C (or the job was killed) during the third
        calls.append(1)
        return original(atoms, *args, **kwargs)

    monkeypatch.setattr(cli, "relax", interrupted)
    assert relax_main(argv) == 130
    assert not (tmp_path / "out.traj").exists()
    done = read(tmp_path / "out.traj.partial.extxyz", ":")
    assert [a.info["relax_index"] for a in done] == [0, 1]
    monkeypatch.setattr(cli, "relax", lambda *a, **k: (calls.append(1), original(*a, **k))[1])
    assert relax_main(argv) == 0
    assert len(calls) == 4  # 2 before the interruption, 2 after: nothing relaxed twice
    out = read(tmp_path / "out.traj", ":")
    assert [a.info["relax_index"] for a in out] == [0, 1, 2, 3]
    assert not list(tmp_path.glob("out.traj.partial*"))


def test_batched_relax_continues_after_an_interruption(tmp_path, monkeypatch):
    pytest.importorskip("torch_sim")
    import mlip.sim.batch_relax as br

    model = _model_file(tmp_path)
    write(tmp_path / "in.xyz", _cells(5))
    argv = [str(tmp_path / "in.xyz"), str(tmp_path / "out.xyz"), "--model", str(model), "--steps", "200",
            "--engine", "torchsim", "--max-atoms", "8"]  # fmt: skip
    original, finished = br.relax_many, []

    def interrupted(*args, **kwargs):
        for result in original(*args, **kwargs):
            if len(finished) == 2:
                raise KeyboardInterrupt
            finished.append(result.index)
            yield result

    monkeypatch.setattr(br, "relax_many", interrupted)
    assert relax_main(argv) == 130
    assert len(read(tmp_path / "out.xyz.partial.extxyz", ":")) == 2

    def counted(*args, **kwargs):
        for result in original(*args, **kwargs):
            finished.append(result.index)
            yield result

    monkeypatch.setattr(br, "relax_many", counted)
    assert relax_main(argv) == 0
    assert sorted(finished) == [0, 1, 2, 3, 4]  # nothing relaxed twice
    out = read(tmp_path / "out.xyz", ":")
    assert [a.info["relax_index"] for a in out] == [0, 1, 2, 3, 4]
    assert all(a.info["relax_converged"] and a.info["relax_steps"] > 0 for a in out)


def test_mlip_relax_reads_a_directory_and_sends_slabs_through_ase(tmp_path):
    from ase.build import fcc111

    model = _model_file(tmp_path)
    (tmp_path / "in").mkdir()
    write(tmp_path / "in" / "a.xyz", _cells(2))
    slab = fcc111("Cu", size=(2, 2, 2), vacuum=4.0, a=3.7)
    slab.rattle(0.02, seed=0)
    write(tmp_path / "in" / "b.cif", slab)
    assert (
        relax_main([str(tmp_path / "in"), str(tmp_path / "out.xyz"), "--model", str(model), "--steps", "300"])
        == 0
    )
    out = read(tmp_path / "out.xyz", ":")
    assert [a.info["relax_source"] for a in out] == ["a.xyz", "a.xyz", "b.cif"]
    assert all(a.info["relax_converged"] for a in out)


def test_mlip_relax_refuses_to_continue_another_run(tmp_path, monkeypatch, capsys):
    import mlip.cli.relax as cli

    model = _model_file(tmp_path)
    write(tmp_path / "in.xyz", _cells(2))

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "relax", stop)
    out = str(tmp_path / "out.xyz")
    assert relax_main([str(tmp_path / "in.xyz"), out, "--model", str(model), "--engine", "ase"]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    argv = [str(tmp_path / "in.xyz"), out, "--model", str(model), "--fmax", "0.05", "--engine", "ase"]
    assert relax_main(argv) == 2
    assert "another run (different fmax)" in capsys.readouterr().err


def test_mlip_eval_keeps_the_metrics_of_files_done_before_an_error(tmp_path):
    model = _model_file(tmp_path)
    frames = _labelled_cu(2, energy=lambda seed: -14.0, forces=lambda seed: np.zeros((4, 3)))
    write(tmp_path / "good.xyz", frames)
    (tmp_path / "broken.xyz").write_text('2\nLattice="oops\nCu 0 0\n')
    out = tmp_path / "m.json"
    rc = eval_main(
        ["--model", str(model), str(tmp_path / "good.xyz"), str(tmp_path / "broken.xyz"), "--out", str(out)]
    )
    assert rc == 2
    assert json.loads(out.read_text())["good.xyz"]["n_frames"] == 2


def test_two_relaxations_into_one_output_are_refused(tmp_path, capsys):
    from mlip.fileio import FileLock

    model = _model_file(tmp_path)
    write(tmp_path / "in.xyz", _cells(1))
    out = tmp_path / "out.xyz"
    with FileLock(tmp_path / ".out.xyz.lock", out, "mlip-relax run"):  # another run holds it
        assert relax_main([str(tmp_path / "in.xyz"), str(out), "--model", str(model)]) == 2
    assert "in use by another mlip-relax run" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ["ase", "auto"])
def test_relax_cell_relaxes_the_positions_of_molecules_and_slabs(tmp_path, capsys, engine):
    """Issue 33 (noticed): --relax-cell skipped molecules and slabs instead of relaxing their positions."""
    from ase.build import fcc111

    model = _model_file(tmp_path)
    slab = fcc111("Cu", size=(2, 2, 2), vacuum=5.0)
    slab.rattle(0.05, seed=1)
    cluster = bulk("Cu", "fcc", a=3.7, cubic=True)
    cluster.pbc, cluster.cell = False, None
    cluster.rattle(0.05, seed=2)
    cell = bulk("Cu", "fcc", a=3.7, cubic=True)
    cell.rattle(0.05, seed=3)
    write(tmp_path / "in.extxyz", [slab, cluster, cell])
    argv = [str(tmp_path / "in.extxyz"), str(tmp_path / "out.extxyz"), "--model", str(model), "--relax-cell",
            "--fmax", "0.05", "--steps", "300", "--engine", engine]  # fmt: skip
    assert relax_main(argv) == 0
    err = capsys.readouterr().err
    assert "[0] is not periodic in all three directions: positions relaxed, cell kept" in err
    out = read(tmp_path / "out.extxyz", ":")
    assert [a.info["relax_index"] for a in out] == [0, 1, 2]
    np.testing.assert_allclose(out[0].cell.array, slab.cell.array)
    assert np.abs(out[0].positions - slab.positions).max() > 1e-3
