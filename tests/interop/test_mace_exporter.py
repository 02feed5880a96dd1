"""The mace-torch exporter runs as a plain script in another environment: it must not import mlip (its own
directory holds mlip's ``e3nn.py``), and a wrong call or a Python without mace-torch is a one-line error with exit
status 2."""

import subprocess
import sys
from pathlib import Path

import pytest

import mlip.interop

EXPORTER = Path(mlip.interop.__file__).parent / "mace_exporter.py"


def _run(*args, python=sys.executable):
    return subprocess.run([python, str(EXPORTER), *args], capture_output=True, text=True, timeout=120)


def test_usage_error():
    run = _run("only-one-argument")
    assert run.returncode == 2
    assert "usage" in run.stderr


def test_a_python_without_mace_torch_is_named(tmp_path):
    try:
        import mace  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - depends on the environment
        pytest.skip("this environment has mace-torch")
    run = _run(str(tmp_path / "in.model"), str(tmp_path / "out"))
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "has no mace-torch" in lines[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_the_exporter_imports_nothing_from_mlip():
    source = EXPORTER.read_text()
    assert "import mlip" not in source
    assert "from mlip" not in source
