"""Export a mace-torch model as plain data: ``python mace_exporter.py IN.model OUT_PREFIX``.

This file runs in a Python environment that has mace-torch (whose pins clash with mlip's); it imports nothing from
mlip. It loads ``IN.model`` (a pickled mace-torch model, as ``mace_run_train`` writes and as MACE-MP-0, MPA-0,
OMAT-0 and OFF are distributed) and writes

* ``OUT_PREFIX.npz``: every parameter and buffer of the model's ``state_dict`` as a float64 (or int64) array, under
  its ``state_dict`` key (e3nn's cached Wigner-3j tables and output masks left out: they are functions of the
  irreps);
* ``OUT_PREFIX.json``: the description mlip needs to rebuild the computation, ``{"format": "mlip-mace-export",
  "version": 1, ...}``: the classes, irreps, instructions and hyperparameters of every block.

No pickled classes cross over: mlip's importer reads only these two files.
A block this exporter does not know is refused with a one-line error naming it (exit status 2).

Supported: ``MACE`` and ``ScaleShiftMACE`` with ``RealAgnosticInteractionBlock``,
``RealAgnosticResidualInteractionBlock``, ``RealAgnosticDensityInteractionBlock`` and
``RealAgnosticDensityResidualInteractionBlock``; Bessel radial basis with the polynomial cutoff; the Agnesi distance
transform; ZBL pair repulsion; linear and non-linear (MLP) readouts; one or several heads.
"""

from __future__ import annotations

import json
import os
import sys

__all__ = [
    "FORMAT",
    "INTERACTIONS",
    "MODELS",
    "READOUTS",
    "VERSION",
    "ExportError",
    "arrays",
    "describe",
    "export",
    "main",
]

#: The ``"format"`` of the JSON description.
FORMAT = "mlip-mace-export"
#: The ``"version"`` of the JSON description; mlip reads this version.
VERSION = 1
#: The mace-torch model classes the exporter takes.
MODELS = ("MACE", "ScaleShiftMACE")
#: The mace-torch interaction blocks the exporter takes.
INTERACTIONS = (
    "RealAgnosticInteractionBlock",
    "RealAgnosticResidualInteractionBlock",
    "RealAgnosticDensityInteractionBlock",
    "RealAgnosticDensityResidualInteractionBlock",
)
#: The mace-torch readout blocks the exporter takes.
READOUTS = ("LinearReadoutBlock", "NonLinearReadoutBlock")
_SKIPPED = ("output_mask", "_w3j_", "weights_0_zeroed", "weights_1_zeroed", "weights_max_zeroed")


class ExportError(Exception):
    """A model this exporter cannot describe (the message names the block)."""


def _name(obj) -> str:
    return type(obj).__name__


def _require(kind: str, obj, allowed: tuple[str, ...]) -> str:
    name = _name(obj)
    if name not in allowed:
        raise ExportError(f"unsupported {kind} {name!r}; mlip imports {', '.join(allowed)}")
    return name


def _activation(fn) -> dict | None:
    """``{"name": "silu" | "tanh", "cst": c}``: e3nn wraps activations in ``normalize2mom`` (``c f(x)`` with
    ``c = E[f(z)^2]^{-1/2}``, ``z ~ N(0, 1)``; ``c = 1`` where e3nn treats it as the identity)."""
    if fn is None:
        return None
    inner = getattr(fn, "f", fn)
    name = getattr(inner, "__name__", type(inner).__name__).lower()
    if name not in ("silu", "tanh"):
        raise ExportError(f"unsupported activation {name!r}; mlip imports silu and tanh")
    cst = 1.0 if getattr(fn, "_is_id", True) or not hasattr(fn, "cst") else float(fn.cst)
    return {"name": name, "cst": cst}


def _mlp(net) -> list[dict]:
    """e3nn ``FullyConnectedNet`` layers: ``x @ (W / sqrt(h_in var_in))``, then ``act`` and ``* sqrt(var_out)``
    (hidden layers), or ``x @ (W / sqrt(h_in var_in / var_out))`` (the last)."""
    layers = []
    for layer in net:
        layers.append(
            {
                "h_in": int(layer.h_in),
                "h_out": int(layer.h_out),
                "var_in": float(layer.var_in),
                "var_out": float(layer.var_out),
                "act": _activation(layer.act),
            }
        )
    return layers


def _readout(block) -> dict:
    name = _require("readout", block, READOUTS)
    if name == "LinearReadoutBlock":
        return {
            "class": name,
            "irreps_in": str(block.linear.irreps_in),
            "irreps_out": str(block.linear.irreps_out),
        }
    acts = block.non_linearity.acts
    return {
        "class": name,
        "irreps_in": str(block.linear_1.irreps_in),
        "hidden_irreps": str(block.linear_1.irreps_out),
        "irreps_out": str(block.linear_2.irreps_out),
        "gate": _activation(acts[0] if len(acts) else None),
        "num_heads": int(getattr(block, "num_heads", 1)),
    }


def _interaction(block) -> dict:
    name = _require("interaction block", block, INTERACTIONS)
    if getattr(block, "conv_fusion", None):
        raise ExportError(
            f"{name} with a fused convolution (cueq/oeq conv_fusion) is not supported; export the e3nn model"
        )
    tp = block.conv_tp
    return {
        "class": name,
        "node_feats_irreps": str(block.node_feats_irreps),
        "edge_irreps": str(block.edge_irreps),
        "edge_attrs_irreps": str(block.edge_attrs_irreps),
        "target_irreps": str(block.target_irreps),
        "hidden_irreps": str(block.hidden_irreps),
        "irreps_mid": str(tp.irreps_out),
        "instructions": [
            [i.i_in1, i.i_in2, i.i_out, i.connection_mode, bool(i.has_weight), float(i.path_weight)]
            for i in tp.instructions
        ],
        "avg_num_neighbors": float(block.avg_num_neighbors),
        "radial_mlp": [int(n) for n in block.radial_MLP],
        "radial_layers": _mlp(block.conv_tp_weights),
        "skip_irreps_in1": str(block.skip_tp.irreps_in1),
        "skip_instructions": [
            [i.i_in1, i.i_in2, i.i_out, i.connection_mode, bool(i.has_weight), float(i.path_weight)]
            for i in block.skip_tp.instructions
        ],
        "skip_irreps_out": str(block.skip_tp.irreps_out),
    }


def _product(block) -> dict:
    sc = block.symmetric_contractions
    contractions = []
    for c in sc.contractions:
        correlation = len([k for k in c.state_dict() if k.startswith("U_matrix_")])
        contractions.append({"correlation": correlation})
    if not contractions:
        raise ExportError(
            f"unsupported product basis {_name(sc)!r} (no e3nn contractions: a cuequivariance model?)"
        )
    return {
        "class": _name(block),
        "irreps_in": str(sc.irreps_in),
        "irreps_out": str(sc.irreps_out),
        "correlation": contractions[0]["correlation"],
        "use_sc": bool(block.use_sc),
        "agnostic": bool(getattr(block, "use_agnostic_product", False)),
    }


def describe(model) -> dict:
    """The JSON description of ``model`` (see the module docstring)."""
    import e3nn
    import mace
    import torch

    name = _require("model", model, MODELS)
    emb = model.radial_embedding
    if _name(emb.bessel_fn) != "BesselBasis":
        raise ExportError(f"unsupported radial basis {_name(emb.bessel_fn)!r}; mlip imports BesselBasis")
    transform = getattr(emb, "distance_transform", None)
    if transform is not None and _name(transform) != "AgnesiTransform":
        raise ExportError(
            f"unsupported distance transform {_name(transform)!r}; mlip imports AgnesiTransform"
        )
    if not getattr(emb, "apply_cutoff", True):
        raise ExportError("models with apply_cutoff=False (cutoff applied to the weights) are not supported")
    for attr in ("joint_embedding", "embedding_readout", "les", "field_feats"):
        if hasattr(model, attr):
            raise ExportError(f"unsupported block {attr!r} in {name}")
    scale_shift = getattr(model, "scale_shift", None)
    return {
        "format": FORMAT,
        "version": VERSION,
        "mace_version": getattr(mace, "__version__", "unknown"),
        "e3nn_version": e3nn.__version__,
        "torch_version": torch.__version__,
        "model_class": name,
        "atomic_numbers": [int(z) for z in model.atomic_numbers],
        "r_max": float(model.r_max),
        "num_bessel": int(emb.out_dim),
        "num_polynomial_cutoff": int(emb.cutoff_fn.p),
        "distance_transform": None if transform is None else _name(transform),
        "pair_repulsion": bool(getattr(model, "pair_repulsion", False)),
        "sh_irreps": str(model.spherical_harmonics.irreps_out),
        "sh_normalize": bool(model.spherical_harmonics.normalize),
        "sh_normalization": model.spherical_harmonics.normalization,
        "node_embedding_irreps_out": str(model.node_embedding.linear.irreps_out),
        "heads": list(getattr(model, "heads", ["Default"])),
        "interactions": [_interaction(b) for b in model.interactions],
        "products": [_product(b) for b in model.products],
        "readouts": [_readout(b) for b in model.readouts],
        "scale_shift": scale_shift is not None,
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
    }


def arrays(model) -> dict:
    """Every parameter and buffer (float64 / int64 NumPy arrays) under its ``state_dict`` key."""

    out = {}
    for key, value in model.state_dict().items():
        if any(skip in key for skip in _SKIPPED) or value.numel() == 0 and "weight" not in key:
            continue
        value = value.detach().cpu()
        out[key] = (value.double() if value.is_floating_point() else value.long()).numpy()
    if not any(k.startswith("products.") and "U_matrix" in k for k in out):
        raise ExportError("no U_matrix buffers in the symmetric contractions: unsupported product basis")
    return out


def _atomic_write(path: str, write) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def export(model, prefix: str) -> None:
    """Write ``prefix.npz`` and ``prefix.json`` for ``model`` (each whole or not at all)."""
    import numpy as np

    description, data = describe(model), arrays(model)
    _atomic_write(prefix + ".npz", lambda fh: np.savez_compressed(fh, **data))
    _atomic_write(prefix + ".json", lambda fh: fh.write(json.dumps(description, indent=1).encode()))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python mace_exporter.py IN.model OUT_PREFIX", file=sys.stderr)
        return 2
    # run as a file, this directory is sys.path[0], and its e3nn.py (mlip's e3nn interop) would shadow e3nn
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    # e3nn 0.4.4 loads its constants with torch.load, which torch >= 2.6 refuses without this
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    try:
        import torch
    except ImportError:
        print(
            f"error: {sys.executable} has no torch; pass --mace-python with a Python that has mace-torch",
            file=sys.stderr,
        )
        return 2
    try:
        import mace  # noqa: F401
    except ImportError:
        print(
            f"error: {sys.executable} has no mace-torch; pass --mace-python with a Python that has it",
            file=sys.stderr,
        )
        return 2
    src, prefix = argv
    try:
        model = torch.load(src, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is the file's problem
        print(f"error: {src}: not a readable mace-torch model ({type(err).__name__}: {err})", file=sys.stderr)
        return 2
    try:
        export(model, prefix)
    except ExportError as err:
        print(f"error: {src}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
