"""A self-contained model artefact: one ``torch.export`` program, energy -> forces and stress included.

``mlip-export model.pt model.pt2`` (:func:`export_model`) writes a file that loads and runs with **only torch**
installed (no mlip, no NumPy)::

    import json, torch
    meta = {"mlip_export.json": ""}
    program = torch.export.load("model.pt2", extra_files=meta).module()
    meta = json.loads(meta["mlip_export.json"])          # elements, cutoff, dtype, the contract below
    out = program(positions, cell, pbc, atomic_numbers, edge_index, edge_shifts)
    out["energy"], out["forces"], out["stress"]

The contract (``CONTRACT_VERSION`` 1), one structure per call:

============== ============ ======= =====================================================================
input          shape        dtype   meaning
============== ============ ======= =====================================================================
positions      [N, 3]       float64 Cartesian positions, Å
cell           [3, 3]       float64 lattice vectors as rows, Å (zeros for a free molecule)
pbc            [3]          bool    periodic directions (recorded; the short-range model reads the edges)
atomic_numbers [N]          int64   Z; one this model does not know raises ``RuntimeError`` in the program
edge_index     [2, E]       int64   row 0 sender j, row 1 receiver i, every pair within ``r_max`` in both
                                    directions (:mod:`mlip.keys`)
edge_shifts    [E, 3]       float64 integer image counts S: ``r_ij = x_j - x_i + S @ cell``
============== ============ ======= =====================================================================

Outputs (a dict of float64 tensors): ``energy`` [] eV, ``node_energy`` [N] eV, ``forces`` [N, 3] eV/Å,
``stress`` [3, 3] eV/Å³ (ASE sign; zeros when the cell has no volume), ``virial`` [3, 3] eV (``-V stress``).
Positions and cell are float64 whatever the network's dtype (``meta["dtype"]``): the network casts inside.

How it is built. ``torch.export`` cannot yet trace ``torch.autograd.grad`` through every backward formula
(non-strict export fails on the backward of ``sqrt``: "a fake tensor in the exported program constant's list",
torch 2.13), so the whole evaluation, forward and backward, is first traced into one ATen graph with ``make_fx``
(symbolic shapes: ``N`` and ``E`` stay free), its ``view`` calls are made ``reshape`` (the traced strides of the
backward need not hold for other inputs), and that graph is exported. The network runs with ``Backend.TORCH`` (mlip's
own CPU kernels are custom operators that need mlip loaded). AOTInductor (``.pt2`` of compiled C++) is not used:
for this graph torch 2.13's Inductor fails in its CPU code generation (a vectorised store with a non-vector index;
with ``cpp.simdlen=1`` a wrapper argument of the wrong type). The program runs in PyTorch's graph interpreter; wrap
it in ``torch.compile`` for speed where Inductor works.

Before writing, :func:`export_model` checks the program against the eager model on a structure of other sizes
than the one it traced, and refuses to write one that disagrees (float64: 1e-10 relative; float32: the larger of
1e-6 and twice the eager model's own float32-vs-float64 distance on that structure, the rule of the compile tests).

Integrity. ``meta["sha256"]`` is :func:`content_digest` of the archive: every entry but the metadata file and torch's
archive id (names
without the archive's top folder, in sorted order, with their lengths) and the metadata itself without that field.
:class:`~mlip.deploy.exported.ExportedModel` recomputes it on load, so a changed byte in a weight, the
program or the metadata (``r_max``, elements) is an error naming the file, not other numbers. The archive is built
in memory and written through :func:`mlip.fileio.atomic_write` (a full disk is one clear error; torch's own zip
writer aborted the interpreter).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from torch import nn

from mlip import keys as K
from mlip.data import atoms_to_graph
from mlip.errors import MLIPInputError
from mlip.fileio import atomic_write
from mlip.models import convert_model
from mlip.models.config import parse_dtype
from mlip.models.io import FORMAT_VERSION
from mlip.version import __version__

FORMAT = "mlip-exported-program"
CONTRACT_VERSION = 1
INPUTS = ("positions", "cell", "pbc", "atomic_numbers", "edge_index", "edge_shifts")
OUTPUTS = ("energy", "node_energy", "forces", "stress", "virial")
META_FILE = "mlip_export.json"


__all__ = [
    "content_digest",
    "contract_inputs",
    "trace_program",
    "metadata",
    "export_model",
    "save_artefact",
    "FORMAT",
    "CONTRACT_VERSION",
    "INPUTS",
    "OUTPUTS",
    "META_FILE",
]


class _Program(nn.Module):
    """One structure's evaluation in the contract's terms (traced, not exported as is)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, positions, cell, pbc, atomic_numbers, edge_index, edge_shifts
    ) -> dict[str, torch.Tensor]:
        batch = {
            K.POSITIONS: positions, K.CELL: cell[None], K.PBC: pbc[None], K.ATOMIC_NUMBERS: atomic_numbers,
            K.EDGE_INDEX: edge_index, K.EDGE_SHIFTS: edge_shifts, K.BATCH: torch.zeros_like(atomic_numbers),
        }  # fmt: skip
        out = self.model(batch, compute_forces=True, compute_stress=True)
        return {
            "energy": out[K.ENERGY][0],
            "node_energy": out[K.NODE_ENERGY],
            "forces": out[K.FORCES],
            "stress": out[K.STRESS][0],
            "virial": out[K.VIRIALS][0],
        }


def contract_inputs(atoms: Atoms, r_max: float) -> tuple[torch.Tensor, ...]:
    """The contract's six inputs for ``atoms`` (mlip's neighbour list, cutoff ``r_max`` Å)."""
    g = atoms_to_graph(atoms, r_max, where="export input")
    return (
        g[K.POSITIONS].to(torch.float64), g[K.CELL].reshape(3, 3).to(torch.float64), g[K.PBC].reshape(3),
        g[K.ATOMIC_NUMBERS], g[K.EDGE_INDEX], g[K.EDGE_SHIFTS].to(torch.float64),
    )  # fmt: skip


def _grid_sample(numbers: list[int], shape: tuple[int, int, int], spacing: float, seed: int) -> Atoms:
    """Atoms on a jittered, sheared periodic grid, the model's elements in turn (a tracing/checking input)."""
    rng = np.random.default_rng(seed)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    cell = np.diag(np.array(shape) * spacing) + np.array([[0, 0.3, 0], [0, 0, 0.2], [0.1, 0, 0]])
    frac = (idx + 0.5 + rng.uniform(-0.08, 0.08, idx.shape)) / np.array(shape)
    z = [numbers[i % len(numbers)] for i in range(len(idx))]
    return Atoms(numbers=z, scaled_positions=frac, cell=cell, pbc=True)


def trace_program(model: nn.Module, *, dtype: str | None = None) -> torch.export.ExportedProgram:
    """The exported program of ``model`` (an mlip model; its network in ``dtype``, default its own) under the
    contract of this module. Dynamic in the number of atoms ``N >= 1`` and edges ``E >= 0``."""
    from torch.fx.experimental.proxy_tensor import make_fx

    if getattr(model, "charge_head", None) is not None:
        raise MLIPInputError(
            "export: models with a long-range term (long_range) cannot be exported yet (the term's reciprocal-"
            "lattice grid is planned from the cell's values on the host, outside what make_fx traces); use the "
            "eager or compiled model"
        )
    model = convert_model(model, dtype=dtype, device="cpu", backend="torch").eval().requires_grad_(False)
    program = _Program(model)
    example = contract_inputs(_grid_sample(model.atomic_numbers, (3, 3, 3), 2.3, seed=0), model.r_max)
    graph = make_fx(program, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*example)
    for node in graph.graph.nodes:
        if node.op == "call_function" and node.target is torch.ops.aten.view.default:
            node.target = torch.ops.aten.reshape.default
    graph.recompile()
    n_atoms = torch.export.Dim("n_atoms", min=1)
    n_edges = torch.export.Dim("n_edges", min=0)
    dims = ({0: n_atoms}, None, None, {0: n_atoms}, {1: n_edges}, {0: n_edges})
    return torch.export.export(graph, example, dynamic_shapes=dims, strict=False)


def metadata(model: nn.Module, dtype: str) -> dict:
    """What the artefact records beside the program (``mlip_export.json``)."""
    return {
        "format": FORMAT,
        "contract_version": CONTRACT_VERSION,
        "inputs": list(INPUTS),
        "outputs": list(OUTPUTS),
        "atomic_numbers": list(model.atomic_numbers),
        "r_max": float(model.r_max),
        "dtype": dtype,
        "input_dtype": "float64",
        "model_name": model.config.name,
        "model_format_version": FORMAT_VERSION,
        "mlip_version": __version__,
        "torch_version": torch.__version__,
    }


def export_model(model: nn.Module, path: str | Path, *, dtype: str | None = None) -> dict:
    """Trace ``model`` (:func:`trace_program`), check it, and write it to ``path`` atomically; returns the
    metadata written beside it. ``dtype``: the network's dtype in the artefact (default: the model's)."""
    dtype = dtype or model.config.dtype
    parse_dtype(dtype)
    program = trace_program(model, dtype=dtype)
    _check_against_eager(program, model, dtype)
    meta = metadata(model, dtype)
    save_artefact(program, meta, path)
    return meta


def save_artefact(program: torch.export.ExportedProgram, meta: dict, path: str | Path) -> None:
    """Write ``program`` with ``meta`` (to which its ``sha256``, :func:`content_digest`, is added) to ``path``: the
    archive is built in memory and written through :func:`mlip.fileio.atomic_write` (whole or not at all; a full
    disk is an :class:`~mlip.errors.MLIPOutputError` and the previous file is kept)."""
    meta.pop("sha256", None)
    meta["sha256"] = content_digest(zipfile.ZipFile(io.BytesIO(_archive(program, meta))), meta)
    data = _archive(program, meta)
    if content_digest(zipfile.ZipFile(io.BytesIO(data)), meta) != meta["sha256"]:  # pragma: no cover - a bug
        raise RuntimeError("export: torch.export.save wrote different bytes for the same program")
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def _archive(program: torch.export.ExportedProgram, meta: dict) -> bytes:
    """The ``.pt2`` archive's bytes (its top folder is ``archive``, whatever the file is called)."""
    buf = io.BytesIO()
    torch.export.save(program, buf, extra_files={META_FILE: json.dumps(meta)})
    return buf.getvalue()


def content_digest(archive: zipfile.ZipFile, meta: dict) -> str:
    """SHA-256 (hex) of an artefact's contents: each entry but ``extra/mlip_export.json`` and torch's
    ``.data/serialization_id`` (which differs between two saves of one program) (name relative to the top folder,
    length, bytes; sorted by name), then ``meta`` without ``"sha256"`` as sorted JSON. Reading an
    entry also checks the zip's CRC-32 (``zipfile.BadZipFile`` on a mismatch)."""
    digest = hashlib.sha256()
    entries = sorted((info.filename.split("/", 1)[-1], info) for info in archive.infolist())
    for name, info in entries:
        if name in (f"extra/{META_FILE}", ".data/serialization_id") or info.is_dir():
            continue
        data = archive.read(info)
        digest.update(name.encode() + b"\0" + len(data).to_bytes(8, "little"))
        digest.update(data)
    body = {k: v for k, v in meta.items() if k != "sha256"}
    digest.update(json.dumps(body, sort_keys=True).encode())
    return digest.hexdigest()


def _check_against_eager(program: torch.export.ExportedProgram, model: nn.Module, dtype: str) -> None:
    """The program and the eager model (same dtype, ``Backend.TORCH``) agree on a structure that was not traced."""

    def run_eager(as_dtype: str) -> dict:
        return _Program(convert_model(model, dtype=as_dtype, device="cpu", backend="torch").eval())(*inputs)

    inputs = contract_inputs(_grid_sample(model.atomic_numbers, (2, 2, 3), 2.2, seed=1), model.r_max)
    want, got = run_eager(dtype), program.module()(*inputs)
    exact = run_eager("float64") if dtype == "float32" else None
    for key in OUTPUTS:
        scale = float(want[key].detach().abs().max().clamp_min(1e-12))
        err = float((want[key].detach() - got[key]).abs().max()) / scale
        tol = 1e-10
        if exact is not None:  # float32: the eager model's own rounding sets the bound
            own = float((want[key].detach() - exact[key].detach()).abs().max()) / scale
            tol = max(1e-6, 2 * own)
        if not err <= tol:
            raise MLIPInputError(
                f"export: the traced program's {key} differs from the eager {dtype} model's by {err:.2e} "
                f"(relative; bound {tol:.1e}); this model cannot be exported faithfully, please report it"
            )
