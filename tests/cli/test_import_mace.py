"""``mlip-import-mace``: the plumbing (exporter in another interpreter, import, atomic model file) with a stand-in
interpreter that writes a fixture export, and its one-line user errors. The mace-torch side itself runs where
mace-torch is installed (``tests/fixtures/mace/make_fixtures.py``)."""

import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from mlip.cli.import_mace import main
from mlip.interop.mace_import import model_from_export

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mace"


def _stand_in(tmp_path: Path, name: str = "tiny", *, fail: str | None = None) -> Path:
    """An executable that, called as ``PY exporter.py IN PREFIX``, copies the fixture export to PREFIX (or prints
    the exporter's kind of error and exits 2)."""
    script = tmp_path / "fake-python"
    body = (
        f"print({fail!r}, file=sys.stderr); sys.exit(2)"
        if fail
        else f"[shutil.copy('{FIXTURES / name}' + s, sys.argv[3] + s) for s in ('.json', '.npz')]"
    )
    script.write_text(f"#!{sys.executable}\nimport shutil, sys\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_import_writes_an_mlip_model_equal_to_the_export(tmp_path, capsys):
    from ase.build import molecule

    from mlip.inference.predict import predict

    src = tmp_path / "in.model"
    src.write_bytes(b"a mace-torch model")
    out = tmp_path / "out.pt"
    assert main([str(src), str(out), "--mace-python", str(_stand_in(tmp_path))]) == 0
    assert "wrote" in capsys.readouterr().out
    atoms = molecule("CH3CH2OH")
    a = predict(str(out), [atoms], dtype="float64").results[0]
    b = predict(model_from_export(FIXTURES / "tiny"), [atoms]).results[0]
    assert abs(a["energy"] - b["energy"]) <= 1e-12 * abs(b["energy"])
    np.testing.assert_allclose(a["forces"], b["forces"], rtol=0, atol=1e-12 * np.abs(b["forces"]).max())


def test_user_errors_are_one_line(tmp_path, capsys):
    src = tmp_path / "in.model"
    assert main([str(tmp_path / "missing.model"), str(tmp_path / "o.pt")]) == 2
    assert "no such file" in capsys.readouterr().err
    src.write_bytes(b"x")
    bad = _stand_in(
        tmp_path,
        fail="error: in.model: unsupported interaction block 'RealAgnosticAttResidualInteractionBlock'",
    )
    assert main([str(src), str(tmp_path / "o.pt"), "--mace-python", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "RealAgnosticAttResidualInteractionBlock" in err[0]
    assert main([str(src), str(tmp_path / "o.pt"), "--mace-python", str(tmp_path / "no-python")]) == 2
    assert "no such interpreter" in capsys.readouterr().err
    good = _stand_in(tmp_path)
    assert main([str(src), str(tmp_path / "o.pt"), "--mace-python", str(good), "--head", "pbe"]) == 2
    assert "no head 'pbe'" in capsys.readouterr().err
    assert not (tmp_path / "o.pt").exists()


@pytest.mark.parametrize("name", ["tiny"])
def test_keep_export_keeps_the_plain_files(tmp_path, name):
    src = tmp_path / "in.model"
    src.write_bytes(b"x")
    keep = tmp_path / "kept"
    assert main([str(src), str(tmp_path / "o.pt"), "--mace-python", str(_stand_in(tmp_path, name)),
                 "--keep-export", str(keep)]) == 0  # fmt: skip
    assert (tmp_path / "kept.json").is_file()
    assert (tmp_path / "kept.npz").is_file()
