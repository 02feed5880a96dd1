"""Selecting a model's parameters by name: shell-style patterns (``fnmatch``) against ``model.named_parameters()``
(``interactions.0.linear.weights.1``, ``products.1.contraction.weight``, ``readouts.*``). Freezing, learning-rate
groups and adapter targets all select this way."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

import torch
from torch import nn

from mlip.errors import MLIPInputError

__all__ = ["match_parameters"]


def match_parameters(
    model: nn.Module,
    patterns: list[str] | tuple[str, ...],
    *,
    key: str,
    required: bool = True,
    where: Callable[[str, torch.Tensor], bool] | None = None,
    what: str = "parameter",
) -> dict[str, list[str]]:
    """``{pattern: [names of the parameters it matches]}`` among those that pass ``where(name, parameter)``.

    With ``required``, a pattern that matches nothing is an error naming the config ``key``, the ``what`` it
    looked for and what the names look like (a misspelt pattern would otherwise select nothing, silently).
    """
    params = [(n, p) for n, p in model.named_parameters() if where is None or where(n, p)]
    matches = {}
    for pattern in patterns:
        hit = [n for n, _ in params if fnmatch.fnmatchcase(n, pattern)]
        if required and not hit:
            names = [n for n, _ in model.named_parameters()]
            tops = sorted({n.split(".")[0] for n in names})
            raise MLIPInputError(
                f"{key}: pattern {pattern!r} matches no {what} of the {model.config.name} model (names look like "
                f"{names[min(1, len(names) - 1)]!r}; top-level groups {tops})"
            )
        matches[pattern] = hit
    return matches
