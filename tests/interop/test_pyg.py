"""PyG adapter: a torch_geometric DataLoader over real data (molecules, bulk cells, slabs) gives mlip's own
energies, forces, stress and node features to 1e-10 in float64; user errors at the adapter are one line."""

import ase.io
import numpy as np
import pytest
import torch

pytest.importorskip("torch_geometric")

from torch_geometric.loader import DataLoader  # noqa: E402

from mlip import keys as K  # noqa: E402
from mlip.data import atoms_to_graph, collate  # noqa: E402
from mlip.errors import MLIPInputError  # noqa: E402
from mlip.interop.pyg import PyGModel, RadiusGraphPBC, atoms_to_data, to_mlip_batch  # noqa: E402
from mlip.models import build_model  # noqa: E402

R_MAX = 4.0


def _frames(shared_data):
    molecules = ase.io.read(shared_data / "3bpa" / "train_300K.xyz", index=":4")
    bulk = ase.io.read(shared_data / "zuo2020_elemental" / "Si_training.extxyz", index=":3")
    slabs = ase.io.read(shared_data / "oc20_s2ef_sample" / "oc20_traj_subsample.extxyz", index="0:40:13")
    return {"molecules": molecules, "bulk": bulk, "slabs": slabs}


def _model(numbers, name="mace", dtype="float64"):
    torch.manual_seed(0)
    z = sorted({int(n) for n in numbers})
    extra = {"max_ell": 2, "max_L": 1, "correlation": 2} if name == "mace" else {"max_ell": 2, "max_L": 1}
    return build_model(
        dict(name=name, atomic_numbers=z, atomic_energies=[-1.0] * len(z), r_max=R_MAX, channels=8,
             avg_num_neighbors=20.0, num_bessel=6, radial_mlp=[16], dtype=dtype, **extra)
    ).eval()  # fmt: skip


@pytest.fixture(scope="module")
def frames(shared_data):
    return _frames(shared_data)


@pytest.mark.parametrize("kind", ["molecules", "bulk", "slabs"])
@pytest.mark.parametrize("name", ["mace", "facet"])
def test_pyg_loader_equals_mlip_pipeline(frames, kind, name):
    atoms = frames[kind]
    model = _model(np.concatenate([a.numbers for a in atoms]), name)
    data = [RadiusGraphPBC(R_MAX)(atoms_to_data(a)) for a in atoms]
    loader = DataLoader(data, batch_size=2, shuffle=False)
    got = {"energy": [], "forces": [], "stress": [], "features": []}
    wrapped = PyGModel(model)
    for batch in loader:
        out = wrapped(batch, compute_stress=True)
        got["energy"].append(out[K.ENERGY].detach())
        got["forces"].append(out[K.FORCES].detach())
        got["stress"].append(out[K.STRESS].detach())
        got["features"].append(torch.cat([f.features.flatten(1) for f in wrapped.node_features(batch)], 1))
    ours = collate([atoms_to_graph(a, R_MAX) for a in atoms])
    want = model(ours, compute_forces=True, compute_stress=True)
    want_features = torch.cat([f.features.flatten(1) for f in model.node_features(ours)], 1)
    for key, ref in (("energy", want[K.ENERGY]), ("forces", want[K.FORCES]), ("stress", want[K.STRESS])):
        mine = torch.cat(got[key])
        scale = float(ref.abs().max())
        assert float((mine - ref.detach()).abs().max()) <= 1e-10 * scale, key
    features = torch.cat(got["features"])
    assert float((features - want_features).abs().max()) <= 1e-10 * float(want_features.abs().max())


def test_node_features_are_equivariant_and_shaped_by_their_irreps(frames):
    from scipy.spatial.transform import Rotation

    from mlip.kernels import wigner_d

    atoms = frames["molecules"][0]
    model = _model(atoms.numbers)
    q = torch.tensor(Rotation.random(random_state=3).as_matrix())
    rotated = atoms.copy()
    rotated.positions = atoms.positions @ q.numpy().T
    a = model.node_features(collate([atoms_to_graph(atoms, R_MAX)]))
    b = model.node_features(collate([atoms_to_graph(rotated, R_MAX)]))
    assert len(a) == model.config.num_interactions
    for fa, fb in zip(a, b):
        assert fa.features.shape == (len(atoms), fa.irreps.dim, model.config.channels)
        d = wigner_d(fa.irreps, q)
        expected = torch.einsum("ij,njc->nic", d.to(fa.features.dtype), fa.features)
        assert float((fb.features - expected).abs().max()) < 1e-10 * float(fa.features.abs().max())
        assert fa.invariants.shape == (len(atoms), model.config.channels)


def test_a_pyg_head_trains_on_frozen_mace_features(frames, shared_data):
    """A small PyG head (sum pooling + MLP on the frozen trunk's invariants) learns the 3BPA energies."""
    from torch_geometric.nn import global_add_pool

    atoms = ase.io.read(shared_data / "3bpa" / "train_300K.xyz", index=":24")
    model = _model(np.concatenate([a.numbers for a in atoms]))
    energies = torch.tensor([a.get_potential_energy() for a in atoms])
    data = [RadiusGraphPBC(R_MAX)(atoms_to_data(a, y=e.reshape(1))) for a, e in zip(atoms, energies)]
    loader = DataLoader(data, batch_size=8, shuffle=False)
    trunk = PyGModel(model)
    with torch.no_grad():
        cached = [(b, torch.cat([f.invariants for f in trunk.node_features(b)], 1)) for b in loader]
    width = cached[0][1].shape[1]
    torch.manual_seed(1)
    head = torch.nn.Sequential(torch.nn.Linear(width, 32), torch.nn.SiLU(), torch.nn.Linear(32, 1)).double()
    offset = float(energies.mean() / np.mean([len(a) for a in atoms]))  # per-atom mean energy
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)

    def loss_fn():
        total = 0.0
        for b, x in cached:
            pred = global_add_pool(head(x).squeeze(-1) + offset, b.batch)
            total = total + ((pred - b.y) ** 2).mean()
        return total / len(cached)

    first = float(loss_fn())
    for _ in range(300):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert float(loss_fn()) < 0.05 * first
    assert all(p.grad is None for p in model.parameters())  # the trunk stayed frozen


def _data(atoms, **fields):
    d = atoms_to_data(atoms)
    for k, v in fields.items():
        setattr(d, k, v)
    return d


def test_user_errors_are_one_line(frames):
    bulk = frames["bulk"][0]
    model = PyGModel(_model(bulk.numbers))
    periodic = RadiusGraphPBC(R_MAX)(atoms_to_data(bulk))
    no_cell = periodic.clone()
    no_cell.cell = None
    cases = [
        (no_cell, "needs a 'cell'"),
        (_data(bulk, edge_index=periodic.edge_index), "no 'shifts' or 'cell_offsets'"),
        (atoms_to_data(bulk), "no edge_index"),
    ]
    unknown = RadiusGraphPBC(R_MAX)(atoms_to_data(bulk))
    unknown.z = unknown.z.clone()
    unknown.z[0] = 8
    cases.append((unknown, "unknown element"))
    for data, message in cases:
        with pytest.raises(MLIPInputError, match=message) as err:
            model(data)
        assert "\n" not in str(err.value)
    crowded = bulk.copy()
    crowded.positions[1] = crowded.positions[0] + 0.01
    with pytest.raises(MLIPInputError, match="overlapping"):
        RadiusGraphPBC(R_MAX)(atoms_to_data(crowded))


def test_cell_offsets_and_a_cell_without_pbc_read_as_fairchem_writes_them(frames):
    slab = frames["slabs"][0]
    mine = RadiusGraphPBC(R_MAX)(atoms_to_data(slab))
    fairchem_like = atoms_to_data(slab)
    fairchem_like.pbc = None
    fairchem_like.edge_index, fairchem_like.cell_offsets = mine.edge_index, mine.shifts
    a, b = to_mlip_batch(mine), to_mlip_batch(fairchem_like)
    assert bool(b[K.PBC].all())
    torch.testing.assert_close(a[K.EDGE_SHIFTS], b[K.EDGE_SHIFTS])
