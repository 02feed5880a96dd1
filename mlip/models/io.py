"""The deployable model file: data, not code (design note "The model file").

``model.pt`` is a ``torch.save``\\ d dict::

    {"format": "mlip-model", "format_version": 1, "config": {...}, "state_dict": {...},
     "atomic_numbers": [...], "r_max": float, "dtype": "float32", "provenance": {...}}

:func:`load_model` rebuilds the model from ``config`` and loads ``state_dict`` with ``weights_only=True``, so
opening a file never runs code from it.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import torch
from torch import nn

from mlip.errors import MLIPInputError
from mlip.fileio import torch_save_atomic
from mlip.models.config import parse_dtype
from mlip.models.registry import build_model

FORMAT = "mlip-model"
FORMAT_VERSION = 1


def save_model(model: nn.Module, path: str | Path, *, provenance: dict | None = None) -> None:
    """Write ``model`` (its config and current weights) to ``path``, atomically: a reader (or a crash, or a full
    disk) sees the previous file or the new one, never a part (:func:`mlip.fileio.atomic_write`)."""
    from mlip import __version__

    config = model.config.to_dict()
    prov = {"mlip_version": __version__, "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    prov.update(provenance or {})
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "atomic_numbers": list(model.atomic_numbers),
        "r_max": float(model.r_max),
        "dtype": config["dtype"],
        "provenance": prov,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch_save_atomic(payload, path)


def load_model(path: str | Path, device: str | torch.device = "cpu", dtype: str | None = None) -> nn.Module:
    """Rebuild a model from a file written by :func:`save_model`.

    Args:
        path: the model file.
        device: where to put it.
        dtype: ``"float32"``/``"float64"`` to convert the network to; ``None`` keeps the trained dtype.

    Returns:
        the model in eval mode, with ``atomic_numbers`` and ``r_max`` attributes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise MLIPInputError(
            f"{path} is not a readable mlip model file (corrupted or not a torch file): {err}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MLIPInputError(f"{path} is not an mlip model file (no 'format': '{FORMAT}' entry)")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise MLIPInputError(
            f"{path} has model-file format version {version}; this mlip reads version {FORMAT_VERSION}"
        )
    config = dict(payload["config"])
    if dtype is not None:
        config["dtype"] = str(dtype).replace("torch.", "")
        parse_dtype(config["dtype"])
    model = build_model(config)
    state = payload["state_dict"]
    target = parse_dtype(config["dtype"])
    state = {
        k: v.to(target) if v.is_floating_point() and k != "atomic_energies" else v for k, v in state.items()
    }
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise MLIPInputError(f"{path}: weights do not match the model its config describes: {err}") from err
    return model.to(device).eval()
