"""Adapters (mlip.models.adapters): LoRA and Tucker cores start at the base model, keep it equivariant (the physics
suite on adapted models with non-zero adapters), merge into an ordinary model exactly, and count their parameters."""

import pytest
import torch

from mlip.data import GraphDataset, collate, generate_emt_dataset
from mlip.errors import MLIPInputError
from mlip.models import build_model
from mlip.models.adapters import (
    AdapterConfig,
    LoRA,
    TuckerAdapter,
    attach_adapters,
    has_adapters,
    merge_adapters,
)
from mlip.testing.models import tiny_facet, tiny_mace
from mlip.testing.physics import reflection_error, rotation_error
from mlip.testing.structures import cu_au_bulk
from mlip.testing.suite import ModelPhysicsSuite


def _adapted(model, kind: str, rank: int = 2):
    attach_adapters(model, AdapterConfig(kind=kind, rank=rank))
    with torch.no_grad():  # non-zero corrections, else the suite would only test the base model
        for name, p in model.named_parameters():
            if "parametrizations" in name and not name.endswith("original"):
                p.copy_(0.3 * torch.randn_like(p))
    return model


class TestLoRAMACEPhysics(ModelPhysicsSuite):
    def make_model(self, dtype):
        return _adapted(tiny_mace(dtype), "lora")


class TestTuckerMACEPhysics(ModelPhysicsSuite):
    def make_model(self, dtype):
        return _adapted(tiny_mace(dtype), "tucker")


@pytest.mark.parametrize("kind", ["lora", "tucker"])
def test_adapted_facet_stays_equivariant(kind):
    torch.manual_seed(0)
    model = _adapted(tiny_facet(torch.float64, grid_resolution=32), kind)
    assert rotation_error(model, cu_au_bulk()) < 1e-10
    assert reflection_error(model, cu_au_bulk()) < 1e-10


@pytest.fixture(scope="module")
def batch():
    frames = generate_emt_dataset(3, seed=1)
    return collate([GraphDataset(frames, 4.0)[i] for i in range(3)])


def _mace(dtype=torch.float64):
    torch.manual_seed(0)
    return build_model(dict(name="mace", atomic_numbers=[29, 79], atomic_energies=[-1.0, -2.0], channels=8,
                            max_ell=2, max_L=1, correlation=2, radial_mlp=[8], r_max=4.0, dtype="float64"))  # fmt: skip


@pytest.mark.parametrize("kind", ["lora", "tucker"])
def test_adapters_start_at_the_base_model_and_merge_exactly(batch, kind):
    model = _mace()
    base = model(batch)["energy"].detach()
    report = attach_adapters(model, AdapterConfig(kind=kind, rank=2))
    assert torch.allclose(model(batch)["energy"], base, rtol=0, atol=1e-12)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == report["trainable_parameters"]
    readouts = sum(p.numel() for p in model.readouts.parameters())
    assert report["trainable_parameters"] == report["adapter_parameters"] + readouts
    opt = torch.optim.SGD(trainable, lr=0.05)
    out = model(batch, training=True)
    ((out["energy"] - base - 1.0) ** 2).sum().backward()
    opt.step()
    adapted = model(batch)["energy"].detach()
    assert (adapted - base).abs().max() > 1e-4  # the adapter trained
    merge_adapters(model)
    assert not has_adapters(model)
    plain = build_model(model.config.to_dict())
    plain.load_state_dict(model.state_dict())  # the base architecture's names and shapes
    assert torch.allclose(plain(batch)["energy"], adapted, rtol=0, atol=1e-10)


def test_parameter_counts_follow_the_formulas():
    w = torch.zeros(3, 5, 7, 11)
    lora = LoRA(w, rank=2, scale=1.0)
    assert sum(p.numel() for p in lora.parameters()) == 3 * 5 * 2 * (7 + 11)
    tucker = TuckerAdapter(w, rank=4, scale=1.0)
    ranks = [3, 4, 4, 4]
    assert sum(p.numel() for p in tucker.parameters()) == 3 * 4 * 4 * 4 + sum(
        n * r for n, r in zip(w.shape, ranks)
    )
    for u in tucker.factors:  # orthonormal columns
        assert torch.allclose(u.T @ u, torch.eye(u.shape[1]), atol=1e-6)


def test_tucker_delta_is_the_mode_products():
    w = torch.zeros(2, 3, 4, dtype=torch.float64)
    t = TuckerAdapter(w, rank=2, scale=0.5)
    with torch.no_grad():
        t.core.copy_(torch.randn_like(t.core))
    u = list(t.factors)
    expected = 0.5 * torch.einsum("abc,ia,jb,kc->ijk", t.core, u[0], u[1], u[2])
    assert torch.allclose(t.delta(), expected, atol=1e-14)


def test_bad_adapter_configs_are_refused():
    with pytest.raises(MLIPInputError, match="kind must be one of"):
        AdapterConfig.from_dict({"kind": "dora"})
    with pytest.raises(MLIPInputError, match="rank must be an integer"):
        AdapterConfig.from_dict({"kind": "lora", "rank": 0})
    with pytest.raises(MLIPInputError, match="unknown train.adapter option"):
        AdapterConfig.from_dict({"kind": "lora", "ranks": 2})
    with pytest.raises(MLIPInputError, match="matches no weight"):
        attach_adapters(_mace(), AdapterConfig(kind="lora", targets=("products.*.nonexistent",)))
    model = _mace()
    attach_adapters(model, AdapterConfig(kind="lora"))
    with pytest.raises(MLIPInputError, match="already has adapters"):
        attach_adapters(model, AdapterConfig(kind="tucker"))
