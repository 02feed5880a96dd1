"""The API reference: its pages are what ``docs/api/generate.py`` writes from the package (no module or export
left out), it builds offline with Sphinx with no warnings (missing references included: ``-W -n``), every public
name has a docstring, and the package is marked typed (PEP 561)."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"


def _generate():
    sys.path.insert(0, str(API))
    try:
        import generate
    finally:
        sys.path.remove(str(API))
    return generate


def test_pages_are_up_to_date():
    pages = _generate().pages()
    for name, text in pages.items():
        assert (API / name).read_text() == text, f"docs/api/{name} is stale: run python docs/api/generate.py"
    on_disk = {p.name for p in API.glob("*.rst")}
    assert on_disk == set(pages), f"pages without a package: {sorted(on_disk - set(pages))}"


def test_every_module_is_documented():
    import pkgutil

    import mlip

    text = "".join(p.read_text() for p in API.glob("*.rst"))
    modules = [m.name for m in pkgutil.walk_packages(mlip.__path__, "mlip.") if not m.ispkg]
    missing = [m for m in modules if f".. automodule:: {m}\n" not in text]
    assert not missing, f"modules missing from the API reference: {missing}"


@pytest.mark.parametrize(
    "package",
    ["mlip", "mlip.calculators", "mlip.data", "mlip.kernels", "mlip.longrange", "mlip.models", "mlip.nn",
     "mlip.testing"],
)  # fmt: skip
def test_public_names_exist_and_have_docstrings(package):
    pkg = importlib.import_module(package)
    for name in pkg.__all__:
        obj = getattr(pkg, name)  # AttributeError: __all__ lists a name the package does not have
        if callable(obj) or isinstance(obj, type):
            assert (obj.__doc__ or "").strip(), f"{package}.{name} has no docstring"


def test_sphinx_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    run = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-n", "-q", "-b", "html", str(API), str(tmp_path / "html")],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    assert (tmp_path / "html" / "mlip.kernels.html").exists()


def test_the_package_is_typed():
    import mlip

    assert (Path(mlip.__file__).parent / "py.typed").exists()
    assert '"mlip" = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


def _modules():
    import pkgutil

    import mlip

    return ["mlip"] + [m.name for m in pkgutil.walk_packages(mlip.__path__, "mlip.")]


@pytest.mark.parametrize("module", _modules())
def test_public_or_private_by_name(module):
    """Every module lists its public names in ``__all__``; every other name it defines starts with ``_``."""
    import ast

    mod = importlib.import_module(module)
    assert hasattr(mod, "__all__"), f"{module} has no __all__"
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ lists {name!r}, which it does not have"
    defined = []
    for node in ast.parse(Path(mod.__file__).read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.append(node.name)
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        defined += [t.id for t in targets if isinstance(t, ast.Name)]
    public = [n for n in defined if not n.startswith("_")]
    unlisted = sorted(set(public) - set(mod.__all__))
    assert not unlisted, (
        f"{module} defines {unlisted}: list them in __all__ or give them a leading underscore"
    )
