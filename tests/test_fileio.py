"""Files appear whole or not at all (mlip.fileio): a full disk or an error mid-write leaves the previous file
intact and says so in one line; locks; file identities."""

import json
import os
from pathlib import Path

import pytest
import torch

import mlip.fileio as fileio
from mlip.errors import MLIPInputError, MLIPOutputError
from mlip.fileio import DirectoryLock, atomic_write, file_identity, write_json_atomic
from mlip.models import save_model
from mlip.testing.models import tiny_mace


def _no_temporaries(directory: Path):
    return [p.name for p in directory.iterdir() if fileio.TMP_MARK in p.name]


def test_a_full_disk_keeps_the_previous_model(tmp_path, full_disk):
    torch.manual_seed(0)
    first = tiny_mace(torch.float64)
    full_disk["budget"] = 10**9
    save_model(first, tmp_path / "model.pt")
    before = (tmp_path / "model.pt").read_bytes()
    torch.manual_seed(1)
    full_disk["budget"] = 4096
    with pytest.raises(MLIPOutputError, match="no space left on device; the previous model.pt is unchanged"):
        save_model(tiny_mace(torch.float64), tmp_path / "model.pt")
    assert (tmp_path / "model.pt").read_bytes() == before
    assert _no_temporaries(tmp_path) == []
    import mlip

    mlip.load_model(tmp_path / "model.pt")  # still loads


def test_a_full_disk_on_a_first_write_leaves_nothing(tmp_path, full_disk):
    with pytest.raises(MLIPOutputError, match="no metrics.json was written"):
        write_json_atomic(tmp_path / "metrics.json", {"x": list(range(1000))})
    assert list(tmp_path.iterdir()) == []


def test_an_exception_while_writing_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")

    def write_then_fail():
        with atomic_write(target, "w") as fh:
            fh.write("new, half")
            raise RuntimeError("the writer failed")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert target.read_text() == "old"
    assert _no_temporaries(tmp_path) == []


def test_training_outputs_survive_a_full_disk(tmp_path, full_disk):
    """model.pt, metrics.json and parity.png of a finished run are kept when a second export fails."""
    from mlip.training.config import RunConfig
    from mlip.training.run import prepare_data, write_outputs

    full_disk["budget"] = 10**9
    raw = {
        "model": {
            "name": "mace",
            "r_max": 4.0,
            "channels": 4,
            "max_ell": 1,
            "correlation": 2,
            "radial_mlp": [8],
        },
        "data": {"emt_frames": 8, "emt_test_frames": 2},
    }
    cfg = RunConfig.from_dict(raw)
    data = prepare_data(cfg)
    from mlip.training.module import PotentialModule

    module = PotentialModule(data.model_config, vars(cfg.train))
    write_outputs(module, data, cfg, tmp_path)
    saved = {n: (tmp_path / n).read_bytes() for n in ("model.pt", "metrics.json", "parity.png")}
    import mlip

    for budget in (0, 1000, 50_000):
        full_disk["budget"] = budget
        with pytest.raises(MLIPOutputError, match="no space left on device"):
            write_outputs(module, data, cfg, tmp_path)
        if budget == 0:  # nothing could be written: every file is the old one
            assert all((tmp_path / n).read_bytes() == c for n, c in saved.items())
        # whatever got through is a complete new file, the rest the complete old one
        mlip.load_model(tmp_path / "model.pt")
        json.loads((tmp_path / "metrics.json").read_text())
        png = (tmp_path / "parity.png").read_bytes()
        assert png.startswith(b"\x89PNG")
        assert png.endswith(b"IEND\xaeB`\x82")
        assert _no_temporaries(tmp_path) == []


def test_the_directory_lock_excludes_a_second_holder_and_dies_with_its_process(tmp_path):
    with DirectoryLock(tmp_path, "training"):
        with pytest.raises(
            MLIPInputError, match=f"{tmp_path} is in use by another training \\(pid {os.getpid()}"
        ):
            DirectoryLock(tmp_path, "training").acquire()
        pid = os.fork()
        if pid == 0:  # the child tries too
            try:
                DirectoryLock(tmp_path, "training").acquire()
                os._exit(0)
            except MLIPInputError:
                os._exit(3)
        assert os.waitpid(pid, 0)[1] >> 8 == 3
    with DirectoryLock(tmp_path, "training"):  # released
        pass


def test_file_identity_ignores_the_spelling_of_a_path_but_not_an_edit(tmp_path, monkeypatch):
    f = tmp_path / "data.xyz"
    f.write_text("1\n\nH 0 0 0\n")
    monkeypatch.chdir(tmp_path)
    assert file_identity("data.xyz") == file_identity(f) == file_identity(tmp_path / "." / "data.xyz")
    before = file_identity(f)
    f.write_text("1\n\nH 0 0 0.5\n")  # edited: another size
    assert file_identity(f) != before
    size = file_identity(f)
    os.utime(f, ns=(1, 1))  # touched: same size, another modification time
    assert file_identity(f) != size
    d = tmp_path / "dir"
    d.mkdir()
    (d / "a").write_text("x")
    assert file_identity(d)["files"][0][:2] == ["a", 1]


def test_a_run_record_continues_the_same_run_and_refuses_another(tmp_path):
    from mlip.fileio import claim_run_record

    record, out = tmp_path / "run.json", tmp_path / "out.xyz"
    settings = {"model": "a.pt", "steps": 10, "fmax": 0.01}
    opts = {"outputs": [out], "holder": str(out), "advice": "delete it"}
    assert claim_run_record(record, settings, **opts) is False  # a new run: the record is written
    assert json.loads(record.read_text()) == settings
    out.write_text("partial")
    assert claim_run_record(record, settings, **opts) is True
    assert claim_run_record(record, {**settings, "steps": 20}, ignore=("steps",), **opts) is True
    with pytest.raises(MLIPInputError, match=r"holds another run \(different fmax, model\); delete it"):
        claim_run_record(record, {**settings, "fmax": 0.02, "model": "b.pt"}, **opts)
    record.unlink()
    with pytest.raises(MLIPInputError, match="without its run.json"):
        claim_run_record(record, settings, **opts)
