"""check_frames (bulk, vectorised) raises exactly what check_frame raises for the first failing frame, and lets
every good frame through; mlip-preprocess relies on it for the frames it does not check one by one."""

import numpy as np
import pytest
from ase.io import read

from mlip.data import LabelKeys, atoms_to_frame
from mlip.data.checks import check_frame, check_frames
from mlip.data.preprocess import preprocess
from mlip.data.units import energy_bound
from mlip.errors import MLIPInputError


@pytest.fixture(scope="module")
def frames(shared_data):
    """Molecules without stress (3BPA) and periodic cells with stress (Mo), with an empty-label frame."""
    mols = read(shared_data / "3bpa" / "train_300K.xyz", ":12")
    cells = read(shared_data / "zuo2020_elemental" / "Mo_training.extxyz", ":12")
    out = [atoms_to_frame(a, where=f"f[{i}]") for i, a in enumerate(mols + cells)]
    out[5].forces = None
    out[14].stress = None
    out[3].charges = np.linspace(-0.2, 0.2, len(out[3].atoms))
    return out


def _copy(frame):
    from dataclasses import replace

    arrays = {
        k: None if getattr(frame, k) is None else np.array(getattr(frame, k))
        for k in ("forces", "stress", "charges")
    }
    return replace(frame, atoms=frame.atoms.copy(), **arrays)


def _damage(frame, kind: str):
    f = _copy(frame)
    if kind == "nan_force":
        f.forces[1, 2] = np.nan
    elif kind == "inf_stress":
        f.stress[0, 1] = np.inf
    elif kind == "nan_charge":
        f.charges = np.full(len(f.atoms), np.nan)
    elif kind == "kbar":
        f.stress = f.stress * 1602.1766
    elif kind == "mev_force":
        f.forces = f.forces * 1000.0
    elif kind == "kcal":
        f.energy = f.energy * 23.06
    elif kind == "just_over":  # the energy bound by a hair: the bulk pass must not miss it
        f.energy = -energy_bound(f.atoms.numbers) * (1 + 1e-12)
    elif kind == "element":
        f.atoms.numbers[2] = 0
    elif kind == "nan_energy":
        f.energy = float("nan")
    return f


def _message(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except MLIPInputError as err:
        return str(err)
    return None


def test_good_frames_pass(frames):
    check_frames(frames)
    check_frames(frames, units=False)
    check_frames([])
    assert all(_message(check_frame, f) is None for f in frames)


@pytest.mark.parametrize(
    ("kind", "where"),
    [("nan_force", 2), ("inf_stress", 15), ("nan_charge", 3), ("kbar", 20), ("mev_force", 13),
     ("kcal", 7), ("just_over", 9), ("element", 0), ("nan_energy", 23)],
)  # fmt: skip
@pytest.mark.parametrize("units", [True, False])
def test_bulk_check_raises_what_the_frame_check_raises(frames, kind, where, units):
    batch = list(frames)
    batch[where] = _damage(batch[where], kind)
    first = next((m for f in batch if (m := _message(check_frame, f, units=units)) is not None), None)
    assert _message(check_frames, batch, units=units) == first
    magnitude_only = kind in ("kbar", "mev_force", "kcal", "just_over")
    assert (first is None) == (magnitude_only and not units)
    if first is not None:
        assert first.startswith(f"f[{where}]: ")


def test_the_first_failing_frame_is_named(frames):
    batch = list(frames)
    batch[18] = _damage(batch[18], "kbar")
    batch[4] = _damage(batch[4], "nan_force")
    assert _message(check_frames, batch).startswith("f[4]: the forces label contains NaN")


def test_preprocess_refuses_a_bad_label_from_its_workers(tmp_path, shared_data):
    """mlip-preprocess checks plain frames in bulk in its workers: a kBar stress is still refused by name."""
    from ase.io import write

    cells = read(shared_data / "zuo2020_elemental" / "Mo_training.extxyz", ":40")
    cells[33].calc.results["stress"] = cells[33].calc.results["stress"] * 1602.1766
    write(tmp_path / "mo.xyz", cells)
    for workers in (1, 2):
        with pytest.raises(MLIPInputError, match=r"mo.xyz\[33\]: a stress component is .* implausible"):
            preprocess([tmp_path / "mo.xyz"], tmp_path / f"out{workers}", shard_size=16, workers=workers)
    out = preprocess(
        [tmp_path / "mo.xyz"], tmp_path / "ok", shard_size=16, workers=2, keys=LabelKeys(check_units=False)
    )
    assert out["n_frames"] == 40
