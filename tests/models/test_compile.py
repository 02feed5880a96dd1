"""``model.compile_network()``: the network traces as one graph (``fullgraph=True``, dynamic shapes) and gives the
eager model's energies, forces and stress (1e-10 relative in float64, 1e-6 in float32) for every backbone,
every edge-product kind and the CPU backends, on a molecule, a periodic bulk cell and a slab in one batch."""

import numpy as np
import pytest
import torch

from mlip.errors import MLIPInputError
from mlip.models import convert_model
from mlip.testing.models import tiny_facet, tiny_mace
from mlip.testing.physics import predict
from mlip.testing.structures import cu_au_bulk, cu_slab, methanol_like

# Inductor (the default backend, which generates C++ here) for MACE in float32, the deployment case: compiling costs about a minute on
# a CI core. The others trace with ``aot_eager``: the same Dynamo graph (fullgraph, dynamic shapes, the fake and
# autograd formulas of our custom ops) executed op by op, which is what compile-readiness is about.
INDUCTOR = {("mace", torch.float32)}
# MACE and TDN at max_ell 2, correlation 2: every code path of the tiny model, about a third less to trace.
SMALL = {"max_ell": 2, "correlation": 2}


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Each test's models compile from scratch: Dynamo keeps at most 8 graphs per code object
    (``node_energies``), and this file builds more model structures than that."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _structures():
    return [methanol_like(), cu_au_bulk(repeat=2), cu_slab()]


def _max_rel(a, b, key) -> float:
    """Largest difference of ``key`` over the batch, relative to its largest magnitude in ``a``."""
    scale = max(float(np.max(np.abs(r[key]))) for r in a)
    return max(float(np.max(np.abs(np.asarray(x[key]) - y[key]))) for x, y in zip(a, b)) / scale


def _check_parity(make, dtype, backend="aot_eager", structures=_structures) -> None:
    """Compiled against eager, 1e-10 relative in float64.

    Float32: 1e-6 relative, or, where the eager float32 model itself is further than that from the same weights
    in float64 (Facet's forces: 2.1e-6 measured), twice that distance: a compiled graph rounds differently
    (Inductor fuses and reorders sums) but must not be less accurate than eager float32 is anyway.
    """
    atoms = structures()
    torch.manual_seed(0)
    model = make(torch.float64)
    floor = dict.fromkeys(("energy", "forces", "stress"), 1e-10)
    if dtype == torch.float32:
        reference = predict(model, atoms, stress=True)
        model = convert_model(model, dtype=torch.float32)
    eager = predict(model, atoms, stress=True)
    if dtype == torch.float32:
        floor = {key: max(1e-6, 2.0 * _max_rel(reference, eager, key)) for key in floor}
    compiled = predict(model.compile_network(backend=backend), atoms, stress=True)
    for key, tol in floor.items():
        assert _max_rel(eager, compiled, key) < tol, key


BACKBONES = {
    "mace": lambda dtype, **kw: tiny_mace(dtype, **{**SMALL, **kw}),
    "facet": lambda dtype, **kw: tiny_facet(dtype, **kw),
    "tdn": lambda dtype, **kw: tiny_mace(dtype, name="tdn", **{**SMALL, **kw}),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_compiled_backbone_matches_eager(name, dtype):
    backend = "inductor" if (name, dtype) in INDUCTOR else "aot_eager"
    _check_parity(BACKBONES[name], dtype, backend)


@pytest.mark.parametrize("kind", ["gaunt_fft", "gaunt_grid", "vector_grid", "cp"])
def test_compiled_product_kinds_match_eager(kind):
    _check_parity(lambda dtype: tiny_mace(dtype, tensor_product=kind, **SMALL), torch.float64)


@pytest.mark.parametrize("backend", ["torch", "native"])
def test_compiled_cpu_backends_match_eager(backend):
    if backend == "native":
        from mlip.kernels.native import native_available

        if not native_available():
            pytest.skip("no C++ compiler: the native kernels do not build here")
    _check_parity(lambda dtype: tiny_mace(dtype, backend=backend, **SMALL), torch.float64)


def test_compiled_network_takes_new_sizes_without_recompiling():
    torch.manual_seed(0)
    model = tiny_mace(torch.float64).compile_network(backend="aot_eager")
    predict(model, [cu_au_bulk(repeat=2)])
    frames_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    predict(model, [cu_au_bulk(seed=1, repeat=2), methanol_like(seed=2)])  # other atom and edge counts
    predict(model, [cu_slab(seed=3), cu_au_bulk(seed=4)])
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == frames_before


def test_compiled_model_still_names_unknown_elements():
    model = tiny_mace(torch.float64).compile_network()
    atoms = methanol_like()
    atoms.numbers[0] = 14  # Si: not in the tiny model's H, C, O, Cu, Au
    with pytest.raises(MLIPInputError, match="unknown element"):
        predict(model, [atoms])


def test_compiled_network_refuses_training_steps():
    from mlip.data import atoms_to_graph, collate

    model = tiny_mace(torch.float64).compile_network()
    batch = collate([atoms_to_graph(methanol_like(), model.r_max)])
    with pytest.raises(RuntimeError, match="compiled for inference"):
        model(batch, compute_forces=True, training=True)


LONG_RANGE = {"kind": "auto", "accuracy": 1e-8}


def _long_range_structures():
    """A free molecule, a periodic cell, a charged periodic cell and a slab (summed in its padded cell)."""
    charged = cu_au_bulk(seed=2)
    charged.info["charge"] = 1.0
    return [methanol_like(), cu_au_bulk(repeat=2), charged, cu_slab(seed=5)]


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_compiled_long_range_matches_eager(name):
    """The Coulomb term inside the graph: Ewald with the model's own edges as real-space pairs (slabs padded, with
    the Yeh–Berkowitz correction), the direct sum.
    (``aot_eager`` to keep CI short: Inductor on MACE with this term took 140 s on a CI core; it passed by hand.)"""
    make = lambda dtype: BACKBONES[name](dtype, long_range=LONG_RANGE)  # noqa: E731
    _check_parity(make, torch.float64, "aot_eager", structures=_long_range_structures)


def test_compiled_long_range_refuses_free_structures_left_to_chebyshev_tucker():
    torch.manual_seed(0)
    model = tiny_mace(torch.float64, long_range={"kind": "chebyshev_tucker"})
    predict(model, [methanol_like()])  # eager: fine
    with pytest.raises(MLIPInputError, match="Chebyshev-Tucker runs eagerly"):
        predict(model.compile_network(backend="aot_eager"), [methanol_like()])
