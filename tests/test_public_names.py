"""Every public name the README, the docs and the examples use imports, under its old path as well as its new one
(issue 34 moved modules; their old paths are modules of re-exports).

``OLD_DOC_NAMES``: every ``mlip.*`` name and every ``from mlip... import name`` of the README, ``docs/*.md`` and
``examples/*.py`` at 0b9ef2f and da03654, before the moves, so that code written from the docs of then still
runs."""

import importlib
import re
from pathlib import Path

import pytest
import tomllib
from test_docs import _resolve  # tests/ is on sys.path (pytest's prepend import mode)

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "examples").glob("*.py")),
]
_IMPORT = re.compile(r"^\s*from (mlip(?:\.\w+)*) import \(?([\w, \n]+?)\)?\s*(?:#.*)?$", re.M)

OLD_DOC_NAMES = [
    "mlip.calculators",
    "mlip.calculators.MLIPCalculator",
    "mlip.calculators.batch_relax.relax_many",
    "mlip.calculators.chunked",
    "mlip.calculators.export.content_digest",
    "mlip.calculators.export.trace_program",
    "mlip.calculators.exported.ExportedModel",
    "mlip.calculators.lammps",
    "mlip.calculators.lammps.LAMMPSDriver",
    "mlip.calculators.lammps.load_lammps",
    "mlip.calculators.torchsim",
    "mlip.calculators.torchsim.MLIPModel",
    "mlip.calculators.torchsim.StateSystemError",
    "mlip.cli.console_main",
    "mlip.data.TosiFumiNaCl",
    "mlip.data.collate",
    "mlip.data.iter_atoms",
    "mlip.data.read_frames",
    "mlip.data.read_mptrj",
    "mlip.data.stress_check",
    "mlip.datasets.TosiFumiNaCl",
    "mlip.errors.MLIPInputError",
    "mlip.fileio.DirectoryLock",
    "mlip.fileio.atomic_path",
    "mlip.hessian",
    "mlip.inference.chunked",
    "mlip.interop.e3nn",
    "mlip.interop.e3nn_products",
    "mlip.interop.e3nn_products.ChannelwiseTensorProduct",
    "mlip.interop.e3nn_products.EdgeProduct",
    "mlip.interop.mace_import.model_from_export",
    "mlip.interop.pyg",
    "mlip.interop.pyg.PyGModel",
    "mlip.interop.pyg.RadiusGraphPBC",
    "mlip.interop.pyg.atoms_to_data",
    "mlip.kernels",
    "mlip.kernels.Backend",
    "mlip.kernels.Irrep",
    "mlip.kernels.Irreps",
    "mlip.kernels.backend.resolve",
    "mlip.kernels.cached.cached_property",
    "mlip.kernels.product",
    "mlip.kernels.product.EdgeProductDescriptor",
    "mlip.kernels.product.edge_product",
    "mlip.load_model",
    "mlip.longrange.K_E",
    "mlip.longrange.coulomb_energy",
    "mlip.longrange.layer.plan_long_range",
    "mlip.models",
    "mlip.models.EdgePotential",
    "mlip.models.EquivariantRMSNorm",
    "mlip.models.InteractionBlock",
    "mlip.models.MACEConfig",
    "mlip.models.ProductBlock",
    "mlip.models.adapters.AdapterConfig",
    "mlip.models.base.EdgePotential",
    "mlip.models.convert_model",
    "mlip.models.heads.EnergyHead",
    "mlip.models.load_model",
    "mlip.models.parse_device",
    "mlip.nn",
    "mlip.nn.GridMLP",
    "mlip.nn.LinearReadout",
    "mlip.nn.SplineRadial",
    "mlip.nn.pair",
    "mlip.predict",
    "mlip.testing.lammps_mliap.FakeMLIAPData",
    "mlip.testing.suite.ModelPhysicsSuite",
    "mlip.testing.torchsim",
    "mlip.training.config.DataConfig",
    "mlip.training.config.TrainConfig",
    "mlip.training.e0_refit",
    "mlip.training.losses",
    "mlip.training.stage_two",
]


def _imported_names() -> list[str]:
    names = set()
    for path in SOURCES:
        for module, what in _IMPORT.findall(path.read_text()):
            names |= {
                f"{module}.{w.strip().split(' as ')[0]}"
                for w in what.replace("\n", " ").split(",")
                if w.strip()
            }
    return sorted(names)


def _reexports() -> list[tuple[str, str]]:
    """``(old module, new module)`` of every re-export module the import contract declares."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    pairs = []
    for contract in config:
        for line in contract.get("ignore_imports", []):
            old, new = (s.strip() for s in line.split("->"))
            if (importlib.import_module(old).__doc__ or "").startswith("The old import path of"):
                pairs.append((old, new))
    return pairs


@pytest.mark.parametrize("name", OLD_DOC_NAMES)
def test_every_name_the_docs_used_before_the_moves_resolves(name):
    _resolve(name)


@pytest.mark.parametrize("name", _imported_names())
def test_every_name_the_docs_and_examples_import_exists(name):
    _resolve(name)


def test_the_docs_and_examples_import_names():
    names = _imported_names()  # the parser finds the pages' imports (18 at the time of writing)
    assert "mlip.calculators.MLIPCalculator" in names
    assert len(names) >= 15


@pytest.mark.parametrize(("old", "new"), _reexports())
def test_an_old_module_path_holds_the_same_objects(old, new):
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    assert list(old_module.__all__) == list(new_module.__all__)
    for name in new_module.__all__:
        assert getattr(old_module, name) is getattr(new_module, name), name


def test_the_ml_iap_class_unpickles_from_its_old_path():
    import pickle

    from mlip.deploy.lammps_mliap import MLIPMLIAPUnified

    old = pickle.dumps(MLIPMLIAPUnified, protocol=0).replace(
        b"mlip.deploy.lammps_mliap", b"mlip.calculators.lammps_mliap"
    )
    assert pickle.loads(old) is MLIPMLIAPUnified
