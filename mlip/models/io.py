"""The deployable model file: data, not code (design note "The model file").

``model.pt`` is a ``torch.save``\\ d dict::

    {"format": "mlip-model", "format_version": 2, "config": {...}, "state_dict": {...},
     "atomic_numbers": [...], "r_max": float, "dtype": "float32", "provenance": {...}, "checksum": "<sha256>"}

:func:`load_model` rebuilds the model from ``config`` and loads ``state_dict`` with ``weights_only=True``, so
opening a file never runs code from it. ``checksum`` is the SHA-256 of the config and of every tensor's name,
dtype, shape and bytes (:func:`payload_checksum`): a file altered after it was written (a flipped byte, a
truncated copy) is refused instead of loading other weights. Version 1 files (without a checksum) still load.

Constant buffers (bases, frequencies) are recomputed in the requested dtype when a model is built; the file's
copies are only checked against them (:mod:`mlip.kernels.constants`), so a float32-trained model loaded in float64
is equivariant to float64 precision. :func:`convert_model` rebuilds a model in another dtype the same way, leaving
the original untouched.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from mlip.errors import MLIPFileNotFoundError, MLIPInputError
from mlip.fileio import torch_save_atomic
from mlip.models.config import parse_device, parse_dtype
from mlip.models.registry import build_model
from mlip.version import __version__

FORMAT = "mlip-model"
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)


__all__ = [
    "payload_checksum",
    "read_model_file",
    "load_file",
    "check_payload",
    "model_payload",
    "build_from_payload",
    "save_model",
    "load_model",
    "convert_model",
    "FORMAT",
    "FORMAT_VERSION",
    "READ_VERSIONS",
]


def payload_checksum(config: dict, state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of ``config`` (canonical JSON) and of each tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_model(model: nn.Module, path: str | Path, *, provenance: dict | None = None) -> None:
    """Write ``model`` (its config and current weights) to ``path``, atomically: a reader (or a crash, or a full
    disk) sees the previous file or the new one, never a part (:func:`mlip.fileio.atomic_write`)."""
    payload = model_payload(model, provenance=provenance)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch_save_atomic(payload, path)


def model_payload(model: nn.Module, *, provenance: dict | None = None) -> dict:
    """The dict :func:`save_model` writes (module docstring) for ``model``."""
    config = model.config.to_dict()
    prov = {"mlip_version": __version__, "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    prov.update(provenance or {})
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config,
        "state_dict": state,
        "atomic_numbers": list(model.atomic_numbers),
        "r_max": float(model.r_max),
        "dtype": config["dtype"],
        "provenance": prov,
        "checksum": payload_checksum(config, state),
    }


def load_file(path: Path):
    """``torch.load`` of a model or committee file (``weights_only``: no code runs); a missing or unreadable file
    is an error naming ``path``."""
    if not path.is_file():
        raise MLIPFileNotFoundError(f"no model file at {path}")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        if _is_exported_artefact(path):
            raise MLIPInputError(
                f"{path} is an exported artefact (mlip-export), not a model file: run it with "
                "mlip.deploy.exported.ExportedModel or LAMMPSDriver, or give the model.pt it was exported from"
            ) from None
        reason = " ".join(str(err).split())[:200]
        raise MLIPInputError(
            f"{path} is not a readable mlip model file (corrupted, truncated or not a torch file: {reason})"
        ) from err


def _is_exported_artefact(path: Path) -> bool:
    """Whether ``path`` is a zip holding ``extra/mlip_export.json`` (an ``mlip-export`` program)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("extra/mlip_export.json") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError):
        return False  # not a readable zip (damaged names, unknown compression, ...): not an artefact


def read_model_file(path: str | Path) -> dict:
    """The checked contents of a model file (the dict of the module docstring); errors name ``path``."""
    path = Path(path)
    payload = load_file(path)
    if isinstance(payload, dict) and payload.get("format") == "mlip-committee":
        n = len(payload.get("members") or [])
        raise MLIPInputError(
            f"{path} is a committee of {n} models: load it with mlip.models.load_committee, or give it to "
            "MLIPCalculator or mlip-eval as it is"
        )
    return check_payload(payload, where=str(path))


def check_payload(payload, *, where: str) -> dict:
    """Check a model payload (the dict of the module docstring) read from ``where``; returns it."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MLIPInputError(f"{where} is not an mlip model file (no 'format': '{FORMAT}' entry)")
    version = payload.get("format_version")
    if version not in READ_VERSIONS:
        raise MLIPInputError(
            f"{where} has model-file format version {version}; this mlip reads version {FORMAT_VERSION} "
            f"(and {', '.join(str(v) for v in READ_VERSIONS if v != FORMAT_VERSION)})"
        )
    config, state = payload.get("config"), payload.get("state_dict")
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise MLIPInputError(f"{where} is damaged: its config or weights are missing")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise MLIPInputError(f"{where} is damaged: its weights are not a mapping of names to tensors")
    if version >= 2 and payload.get("checksum") != payload_checksum(config, state):
        raise MLIPInputError(
            f"{where} is damaged: its checksum does not match its contents (altered or truncated)"
        )
    return payload


def _build_and_load(config: dict, state: dict, *, where: str) -> nn.Module:
    try:
        model = build_model(config)
    except MLIPInputError as err:
        raise MLIPInputError(f"{where}: its model config is invalid: {err}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        reason = " ".join(str(err).split())
        raise MLIPInputError(
            f"{where}: weights do not match the model its config describes: {reason}"
        ) from err
    return model


def build_from_payload(payload: dict, *, where: str, device="cpu", dtype: str | None = None) -> nn.Module:
    """The model of a checked payload (:func:`check_payload`), in ``dtype`` (``None``: the trained one), in eval
    mode on ``device``."""
    config = dict(payload["config"])
    if dtype is not None:
        config["dtype"] = str(dtype).replace("torch.", "")
        parse_dtype(config["dtype"])
    device = parse_device(device)
    return _build_and_load(config, payload["state_dict"], where=where).to(device).eval()


def load_model(path: str | Path, device: str | torch.device = "cpu", dtype: str | None = None) -> nn.Module:
    """Rebuild a model from a file written by :func:`save_model`.

    Args:
        path: the model file.
        device: where to put it.
        dtype: ``"float32"``/``"float64"`` to build the network in; ``None`` keeps the trained dtype. Learned
            weights are converted; constants are recomputed in that dtype.

    Returns:
        the model in eval mode, with ``atomic_numbers`` and ``r_max`` attributes.
    """
    path = Path(path)
    return build_from_payload(read_model_file(path), where=str(path), device=device, dtype=dtype)


def convert_model(
    model: nn.Module, *, dtype: str | torch.dtype | None = None, device=None, backend: str | None = None
) -> nn.Module:
    """A new model equal to ``model`` in ``dtype`` (and on ``device``, with kernel ``backend``), built from
    ``model.config`` with its current weights, constants recomputed in ``dtype``; ``model`` itself is not
    changed. Needs an mlip model (one with ``config``). The weights do not depend on the backend."""
    if not hasattr(model, "config") or not hasattr(model.config, "to_dict"):
        raise MLIPInputError(
            f"converting a {type(model).__name__} needs an mlip model (with a .config); convert it yourself"
        )
    config = model.config.to_dict()
    if dtype is not None:
        config["dtype"] = str(dtype).replace("torch.", "")
        parse_dtype(config["dtype"])
    if backend is not None:
        config["backend"] = str(backend)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    new = _build_and_load(config, state, where=f"a {type(model).__name__}")
    device = parse_device(device) if device is not None else next(model.parameters()).device
    return new.to(device).train(model.training)
