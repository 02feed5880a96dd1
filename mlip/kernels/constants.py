"""Constant buffers of a module (bases, frequencies): recomputed in the module's own dtype, never taken from a file.

A model file keeps constant buffers such as the symmetric-contraction basis ``U`` in the dtype the model was
trained in. Copying a float32 copy into a float64 model would leave it equivariant only to float32 precision
(a relative rotation error of ~1e-9 instead of ~1e-14), which matters for phonons, Hessians and tight
relaxations. :func:`load_constant` therefore checks the stored copy against the value this code computes, to float32
precision whatever the stored dtype (a stored float64 copy may hold float32-rounded values; a different basis, an
incompatible file, differs by far more), and then loads the recomputed value, cast to the buffer's dtype, in its
place.
"""

from __future__ import annotations

import torch

__all__ = ["load_constant"]

_TOLERANCE = {torch.float16: 1e-2, torch.bfloat16: 1e-2}  # relative; 1e-6 for every other dtype


def load_constant(
    state_dict: dict, key: str, expected: torch.Tensor, buffer: torch.Tensor, *, what: str
) -> None:
    """Replace ``state_dict[key]`` (if present) by ``expected`` cast to ``buffer``'s dtype, after checking that
    the stored tensor agrees with ``expected`` (float64) to 1e-6 relative to ``max|expected|`` (1e-2 for
    half-precision copies). Raises ``RuntimeError`` (turned into a clear error by :func:`mlip.load_model`) when it
    does not."""
    stored = state_dict.get(key)
    if stored is None:
        return
    scale = max(float(expected.abs().max()) if expected.numel() else 0.0, 1.0)
    tol = _TOLERANCE.get(stored.dtype, 1e-6) * scale
    if stored.shape != expected.shape or float((stored.double() - expected.double()).abs().max()) > tol:
        raise RuntimeError(f"{key}: the stored {what} differs from the one this version of mlip computes")
    state_dict[key] = expected.to(dtype=buffer.dtype, device=buffer.device).clone()
