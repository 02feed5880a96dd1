"""Outputs never destroy inputs, devices or files behind planted links (issue 33, defects 4 and 5).

Every console script refuses, in one line with exit status 2, an output that is one of its inputs (the same file
after symbolic links) and an output that exists but is not a regular file (a device, a FIFO); lock files are opened
without following symbolic links, so a link planted at ``.OUT.lock`` or ``RUN_DIR/.lock`` never has its target
truncated."""

import os
import stat

import pytest
import torch
import yaml
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from mlip.cli.eval import main as eval_main
from mlip.cli.export import main as export_main
from mlip.cli.import_mace import main as import_main
from mlip.cli.md import main as md_main
from mlip.cli.relax import main as relax_main
from mlip.cli.train import main as train_main
from mlip.models import save_model
from mlip.testing.models import tiny_mace


@pytest.fixture
def files(tmp_path):
    torch.manual_seed(0)
    save_model(tiny_mace(torch.float64, channels=4, max_ell=1, correlation=2), tmp_path / "m.pt")
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=0)
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=atoms.positions * 0.0)
    write(tmp_path / "x.extxyz", atoms)
    return tmp_path


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert ": error: " in err, err
    for needle in needles:
        assert needle in err, err


def _runs(tmp, out):
    """Each console script with ``out`` as its output (and its usual inputs m.pt, x.extxyz)."""
    m, x = str(tmp / "m.pt"), str(tmp / "x.extxyz")
    return {
        "export": lambda: export_main([m, str(out)]),
        "eval": lambda: eval_main(["--model", m, x, "--out", str(out)]),
        "relax": lambda: relax_main([x, str(out), "--model", m]),
        "md": lambda: md_main([x, str(out), "--model", m, "--steps", "2"]),
        "import-mace": lambda: import_main([m, str(out)]),
    }


@pytest.mark.parametrize(
    ("script", "victim"),
    [("export", "m.pt"), ("eval", "m.pt"), ("eval", "x.extxyz"), ("relax", "x.extxyz"), ("md", "x.extxyz"),
     ("import-mace", "m.pt")],
)  # fmt: skip
def test_an_output_that_is_an_input_is_refused(files, capsys, script, victim):
    before = (files / victim).read_bytes()
    assert _runs(files, files / victim)[script]() == 2
    _one_line_error(capsys, "is the input")
    assert (files / victim).read_bytes() == before


@pytest.mark.parametrize("script", ["export", "eval"])
def test_an_output_linked_to_an_input_is_refused(files, capsys, script):
    link = files / ("link.extxyz" if script != "export" else "link.pt2")
    link.symlink_to(files / "m.pt")
    before = (files / "m.pt").read_bytes()
    assert _runs(files, link)[script]() == 2
    _one_line_error(capsys, "is the input")
    assert (files / "m.pt").read_bytes() == before
    assert link.is_symlink()


def _special_files(tmp):
    fifo = tmp / "pipe.extxyz"
    os.mkfifo(fifo)
    found = [fifo]
    try:  # a private copy of /dev/null (needs root, which CI has): the real one is never put at risk
        os.mknod(tmp / "null.extxyz", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        found.append(tmp / "null.extxyz")
    except PermissionError:
        pass
    return found


@pytest.mark.parametrize("script", ["export", "eval", "relax", "md"])
def test_an_output_that_is_a_device_or_fifo_is_refused(files, capsys, script):
    for special in _special_files(files):
        mode = os.lstat(special).st_mode
        assert _runs(files, special)[script]() == 2
        _one_line_error(capsys, str(special))
        assert os.lstat(special).st_mode == mode  # still the device / FIFO, not a regular file


@pytest.mark.parametrize("script", ["relax", "md"])
def test_a_symlink_planted_at_the_lock_file_is_not_followed(files, capsys, script):
    victim = files / "precious.txt"
    victim.write_text("keep me\n")
    out = files / "out.extxyz"
    (files / ".out.extxyz.lock").symlink_to(victim)
    assert _runs(files, out)[script]() == 2
    _one_line_error(capsys, ".out.extxyz.lock is a symbolic link")
    assert victim.read_text() == "keep me\n"


def test_a_symlink_planted_at_the_run_directory_lock_is_not_followed(tmp_path, capsys):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(victim)
    config = {"data": {"emt_frames": 8}, "train": {"max_epochs": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert train_main(["--config", str(tmp_path / "c.yaml"), "--run-dir", str(run)]) == 2
    _one_line_error(capsys, ".lock is a symbolic link")
    assert victim.read_text() == "keep me\n"


def test_training_refuses_to_overwrite_its_init_from(files, capsys):
    run = files / "run"
    run.mkdir()
    (run / "committee.pt").write_bytes((files / "m.pt").read_bytes())
    config = {"data": {"emt_frames": 8}, "train": {"max_epochs": 1, "init_from": str(run / "committee.pt")}}
    (files / "c.yaml").write_text(yaml.safe_dump(config))
    assert train_main(["--config", str(files / "c.yaml"), "--run-dir", str(run)]) == 2
    _one_line_error(capsys, "train.init_from", "would overwrite")
