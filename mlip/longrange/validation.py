"""Input checks shared by the public long-range entry points: precise messages, never a silent wrong number."""

from __future__ import annotations

import torch

__all__ = ["check_system"]


def check_system(
    positions: torch.Tensor,
    charges: torch.Tensor,
    cell: torch.Tensor | None,
    pbc: torch.Tensor | None,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Validate one structure and return ``(cell, pbc)`` normalised to tensors (``cell`` is ``None`` when free).

    Args:
        positions: ``[N, 3]`` float, Å.
        charges: ``[N]`` float, e; same dtype and device as ``positions``.
        cell: ``[3, 3]`` Å with lattice vectors as rows, or ``None`` for a free structure.
        pbc: ``[3]`` bool, or ``None`` (all periodic when a cell is given, none otherwise).

    Raises:
        ValueError: wrong shapes, non-finite values, one periodic direction (a wire), a singular cell.
        TypeError: integer positions or charges, or mismatched dtypes.
    """
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape (N, 3), got {tuple(positions.shape)}")
    if charges.shape != positions.shape[:1]:
        raise ValueError(
            f"charges must have shape ({positions.shape[0]},) to match positions, got {tuple(charges.shape)}"
        )
    if not positions.is_floating_point() or not charges.is_floating_point():
        raise TypeError(
            f"positions and charges must be floating point, got {positions.dtype} and {charges.dtype}"
        )
    if positions.dtype != charges.dtype:
        raise TypeError(f"positions ({positions.dtype}) and charges ({charges.dtype}) must share one dtype")
    if not torch.isfinite(positions).all():
        raise ValueError("positions contain NaN or infinite values")
    if not torch.isfinite(charges).all():
        raise ValueError("charges contain NaN or infinite values")
    if pbc is not None:
        pbc = torch.as_tensor(pbc, dtype=torch.bool, device=positions.device)
        if pbc.shape != (3,):
            raise ValueError(f"pbc must have shape (3,), got {tuple(pbc.shape)}")
        if int(pbc.sum()) == 1:
            raise ValueError(
                f"mixed periodicity pbc={pbc.tolist()} (a wire) is not supported: the Coulomb sums take free "
                "structures, slabs (two periodic directions) and bulk cells"
            )
    if cell is None:
        if pbc is not None and pbc.all():
            raise ValueError("pbc is periodic but no cell was given")
        return None, torch.zeros(3, dtype=torch.bool, device=positions.device)
    if cell.shape != (3, 3):
        raise ValueError(f"cell must have shape (3, 3) with lattice vectors as rows, got {tuple(cell.shape)}")
    if cell.dtype != positions.dtype:
        raise TypeError(f"cell ({cell.dtype}) and positions ({positions.dtype}) must share one dtype")
    if not torch.isfinite(cell).all():
        raise ValueError("cell contains NaN or infinite values")
    if pbc is None:
        pbc = torch.ones(3, dtype=torch.bool, device=positions.device)
    if not pbc.any():
        return None, pbc
    volume = torch.linalg.det(cell.detach().double()).abs().item()
    scale = cell.detach().double().norm(dim=1).prod().item()
    if not volume > 1e-8 * max(scale, 1e-300):
        raise ValueError(f"cell is singular (volume {volume:.3g} Å^3 for lattice vectors {cell.tolist()})")
    return cell, pbc
