"""Fine-tuning from a model file (``train.init_from``) and the selection of trained parameters.

Starting a run from ``model.pt`` keeps everything that defines the function the model computes: its architecture,
weights, normalisation (``avg_num_neighbors``, ``scale``, ``shift``) and reference energies ``E_0``. Only the
network dtype and the kernel backend may differ from the file. Elements of the new training data that the file
does not know extend the model: the new model is built for the union of the elements, every weight tensor is
copied from the file, and along the axes indexed by element (found by building the architecture for both element
lists and comparing shapes) the rows of the file's elements are copied to their new positions while the rows of
the new elements keep their fresh initialisation. New elements take their ``E_0`` from the new data's
isolated-atom frames when there are any, else from a least-squares fit of the new data's energies with the file's
``E_0`` held fixed. With ``data.e0s`` set explicitly, every element's ``E_0`` comes from the new data instead.

Parameter selection (:func:`mlip.models.selection.match_parameters`) reads shell-style patterns (``fnmatch``) against parameter names
(``model.named_parameters()``: ``interactions.0.linear.weights.1``, ``products.1.contraction.weight``,
``readouts.*``): ``train.freeze`` stops the gradients of the matched parameters, ``train.lr_groups``
(``{pattern: lr}``, first match wins) gives them their own learning rate. A pattern that matches no parameter is
refused with the names it could have matched, since a misspelt pattern would otherwise train everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mlip.errors import MLIPInputError
from mlip.models.io import read_model_file
from mlip.models.selection import match_parameters

__all__ = [
    "OVERRIDABLE_KEYS",
    "InitModel",
    "read_init_model",
    "init_model_config",
    "check_init_compatible",
    "extended_state",
    "new_element_e0s",
    "parameter_groups",
]

#: Model-section keys that a fine-tuning run may set to other values than its ``train.init_from`` file has.
OVERRIDABLE_KEYS = ("dtype", "backend")


@dataclass(frozen=True)
class InitModel:
    """A model file to start from: its path, its model config (a dict) and its weights."""

    path: str
    config: dict
    state: dict[str, torch.Tensor]

    @property
    def atomic_numbers(self) -> list[int]:
        return [int(z) for z in self.config["atomic_numbers"]]

    @property
    def e0s(self) -> dict[int, float]:
        return dict(zip(self.atomic_numbers, (float(e) for e in self.config["atomic_energies"])))


def read_init_model(path: str | Path, model_section: dict) -> InitModel:
    """Read ``train.init_from`` and check it against the config's model section (:func:`check_init_compatible`)."""
    payload = read_model_file(Path(path))
    init = InitModel(path=str(path), config=dict(payload["config"]), state=dict(payload["state_dict"]))
    check_init_compatible(init, model_section)
    return init


def check_init_compatible(init: InitModel, model_section: dict) -> None:
    """Refuse a model section that describes another model than ``init``'s: another backbone (``name``), or
    any other key (``channels``, ``r_max``, ...) set to a value the file does not have, except
    :data:`OVERRIDABLE_KEYS`."""
    file_name = init.config.get("name")
    name = model_section.get("name", file_name)  # a section without a name takes the file's backbone
    if name != file_name:
        raise MLIPInputError(
            f"train.init_from: {init.path} is a {file_name!r} model, but model.name is {name!r}; fine-tuning keeps "
            f"the backbone of the model it starts from (set model.name: {file_name})"
        )
    for key, value in model_section.items():
        if key in ("name", *OVERRIDABLE_KEYS):
            continue
        if key not in init.config:
            raise MLIPInputError(f"model.{key}: the {file_name} model in {init.path} has no such option")
        have = init.config[key]
        same = list(value) == list(have) if isinstance(value, (list, tuple)) else value == have
        if not same:
            raise MLIPInputError(
                f"model.{key} is {value!r} in the config but {have!r} in train.init_from {init.path}; a fine-tuned "
                f"model keeps the architecture of the one it starts from (drop model.{key} or make them equal)"
            )


def _element_axes(old: tuple[int, ...], new: tuple[int, ...], n_old: int, n_new: int, name: str) -> list[int]:
    if len(old) != len(new):
        raise MLIPInputError(
            f"train.init_from: weight {name} has {len(old)} axes in the file, {len(new)} here"
        )
    axes = [a for a, (o, n) in enumerate(zip(old, new)) if o != n]
    for a in axes:
        if (old[a], new[a]) != (n_old, n_new):
            raise MLIPInputError(
                f"train.init_from: weight {name} has shape {old} in the file but {new} here, not a change of the "
                f"element count ({n_old} -> {n_new})"
            )
    return axes


def init_model_config(
    init: InitModel, model_section: dict, train_dtype: str, data_e0: dict[int, float], *, keep_file_e0s: bool
) -> dict:
    """The model config of a run that starts from ``init``: the file's architecture and statistics, the model
    section's ``dtype`` (else ``train_dtype``) and ``backend``, the union of the file's elements and those of
    ``data_e0`` (the new data's E0s, eV), with the file's E0 for its elements when ``keep_file_e0s`` (else the new
    data's for every element it has)."""
    config = dict(init.config)
    config["dtype"] = model_section.get("dtype", train_dtype)
    if "backend" in model_section:
        config["backend"] = model_section["backend"]
    zs = sorted(set(init.atomic_numbers) | set(data_e0))
    e0 = init.e0s
    e0.update({z: v for z, v in data_e0.items() if z not in e0} if keep_file_e0s else data_e0)
    config.update({"atomic_numbers": zs, "atomic_energies": [e0[z] for z in zs]})
    return config


def extended_state(init: InitModel, model: nn.Module) -> dict[str, torch.Tensor]:
    """``init``'s weights arranged for ``model``, which is ``init``'s architecture built for a superset of its
    elements (see the module docstring); tensors ``model`` has but the file lacks are refused."""
    old_z, new_z = init.atomic_numbers, [int(z) for z in model.atomic_numbers]
    missing = sorted(set(old_z) - set(new_z))
    if missing:
        raise MLIPInputError(f"train.init_from: the new model lacks the file's elements {missing}")
    target = model.state_dict()
    unknown = sorted(set(init.state) ^ set(target))
    if unknown:
        raise MLIPInputError(
            f"train.init_from: {init.path} does not hold the weights its config describes (differing: {unknown[:5]})"
        )
    rows = torch.tensor([new_z.index(z) for z in old_z])
    out = {}
    for key, new_t in target.items():
        old_t = init.state[key]
        axes = _element_axes(tuple(old_t.shape), tuple(new_t.shape), len(old_z), len(new_z), key)
        if not axes:
            out[key] = old_t.to(new_t.dtype)
            continue
        if len(axes) > 1:
            raise MLIPInputError(f"train.init_from: weight {key} has several element axes; cannot extend it")
        out[key] = new_t.detach().clone().index_copy_(axes[0], rows, old_t.to(new_t.dtype))
    return out


def new_element_e0s(
    init: InitModel, new_z: list[int], frames, isolated: dict[int, float]
) -> dict[int, float]:
    """``E_0`` (eV) of the elements in ``new_z`` that ``init`` lacks: from ``isolated`` (isolated-atom energies of
    the new data) when it has them all, else by least squares of the energies of ``frames`` with the file's
    ``E_0`` held fixed."""
    from ase.data import chemical_symbols

    known = init.e0s
    added = [z for z in new_z if z not in known]
    if not added:
        return {}
    if all(z in isolated for z in added):
        return {z: float(isolated[z]) for z in added}
    labelled = [f for f in frames if f.energy is not None]
    counts = np.array([[np.sum(f.atoms.numbers == z) for z in added] for f in labelled], dtype=np.float64)
    if not labelled or np.linalg.matrix_rank(counts) < len(added):
        names = [chemical_symbols[z] for z in added]
        raise MLIPInputError(
            f"train.init_from: cannot fit E0s of the new elements {names} from the training energies; give "
            "isolated-atom frames or data.e0s"
        )
    residual = np.array(
        [f.energy - sum(known[int(z)] for z in f.atoms.numbers if int(z) in known) for f in labelled]
    )
    e0, *_ = np.linalg.lstsq(counts, residual, rcond=None)
    return {z: float(e) for z, e in zip(added, e0)}


def parameter_groups(model: nn.Module, lr: float, lr_groups: dict[str, float]) -> list[dict]:
    """Optimizer parameter groups of ``model``'s trainable parameters: one per ``lr_groups`` pattern (first
    matching pattern wins) with its learning rate, and the rest at ``lr``. Empty groups are left out."""
    matches = match_parameters(model, list(lr_groups), key="train.lr_groups")
    owner = {}
    for pattern, names in matches.items():
        for n in names:
            owner.setdefault(n, pattern)
    groups: dict[str | None, list] = {p: [] for p in lr_groups}
    groups[None] = []
    for n, p in model.named_parameters():
        if p.requires_grad:
            groups[owner.get(n)].append(p)
    return [{"params": ps, "lr": lr if pat is None else float(lr_groups[pat]), "name": pat or "default"}
           for pat, ps in groups.items() if ps]  # fmt: skip
