"""One model loader for every consumer of a trained model: a path or a module, in the dtype and on the device
asked for.

``resolve_model("model.pt", device="cpu", dtype="float64")`` loads a model file (:func:`mlip.models.load_model`);
``resolve_model(module, ...)`` returns ``module`` itself when it already has that dtype and lives on that device,
else a converted copy (:func:`mlip.models.convert_model`; the module given is never changed). ``copy=True`` always
returns a copy (to compile without touching the caller's module).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mlip.errors import MLIPInputError
from mlip.models import convert_model, load_model, parse_device, parse_dtype

__all__ = ["resolve_model"]


def resolve_model(
    model: nn.Module | str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    copy: bool = False,
) -> nn.Module:
    """The mlip model ``model`` (a model file or an mlip ``nn.Module``) on ``device`` in ``dtype`` (``None``: the
    model's own); see the module docstring."""
    device = parse_device(device)
    if isinstance(model, (str, Path)):
        return load_model(model, device=device, dtype=dtype)
    if not isinstance(model, nn.Module):
        raise MLIPInputError(f"model must be a model file or an mlip nn.Module, got {type(model).__name__}")
    first = next(model.parameters())
    want = parse_dtype(dtype) if dtype is not None else first.dtype
    same_device = first.device.type == device.type and (
        device.index is None or first.device.index == device.index
    )
    if want == first.dtype and same_device and not copy:
        return model
    return convert_model(model, dtype=want, device=device)
