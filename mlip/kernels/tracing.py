"""Whether the current call is being traced into a graph rather than run eagerly.

Eager calls may read tensor values on the host (input checks, per-element grouping); a traced call must not:
the values are symbolic. Three tracers reach mlip's code:

* ``torch.compile`` (Dynamo) and ``torch.export``: :func:`torch.compiler.is_compiling` is true;
* ``make_fx`` (:mod:`torch.fx.experimental.proxy_tensor`), which :mod:`mlip.deploy.export` uses to trace the forward
  *and* the backward (forces, stress) into one graph: a proxy dispatch mode is active.
"""

from __future__ import annotations

import torch
from torch.fx.experimental.proxy_tensor import get_proxy_mode

__all__ = ["is_tracing"]


def is_tracing() -> bool:
    """True under ``torch.compile``, ``torch.export`` or ``make_fx`` (values are symbolic: no host reads)."""
    return torch.compiler.is_compiling() or get_proxy_mode() is not None
