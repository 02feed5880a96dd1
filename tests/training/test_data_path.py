"""One data path (issue 34): a frame is labelled the same way from files and from a preprocessed store, in
training, validation, tests, replay and mlip-eval. One test per defect of the issue (each failed on main at
0b9ef2f), then the same tiny run trained from files and from the store, compared batch by batch and by its losses."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.io import write
from lightning.pytorch.callbacks import Callback

import mlip.training.trainer as trainers
from mlip.data import generate_emt_dataset
from mlip.data.preprocess import preprocess
from mlip.data.readers import LabelKeys
from mlip.errors import MLIPInputError
from mlip.testing.models import tiny_run_config
from mlip.training.config import DataConfig, RunConfig
from mlip.training.run import prepare_data, run_training

MPTRJ = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "mptrj_sample" / "orb_mptrj_reconstructed.json"
)
E0 = {29: -0.5, 79: -0.25}  # eV, isolated Cu and Au (made up, far from the least-squares values)


def _isolated(z: int, energy: float, key: str = "my_energy") -> Atoms:
    a = Atoms(numbers=[z], positions=[[0.0, 0.0, 0.0]])
    a.info.update({key: energy, "energy": energy, "config_type": "IsolatedAtom"})
    return a


def _write_set(path, n=16, *, isolated=(29,), seed=3, negate_stress=False):
    """EMT Cu-Au frames with their labels under custom keys (``my_energy``, ``my_forces``, ``my_stress``,
    ``my_charges``), tags (tag 0 fixed with ``fixed_tags: [0]``), config types and weights, and the isolated atoms
    ``isolated`` (with the energies of ``E0``)."""
    rng = np.random.default_rng(seed)
    images = []
    for i, f in enumerate(generate_emt_dataset(n, seed=seed)):
        a = f.atoms.copy()
        a.info["my_energy"] = f.energy
        a.info["energy"] = f.energy + 100.0  # what the default keys would read: a wrong label
        a.arrays["my_forces"] = f.forces
        a.arrays["forces"] = 2.0 * f.forces  # as wrong
        stress = -f.stress if negate_stress else f.stress
        a.info["my_stress"] = stress.reshape(-1)
        a.arrays["my_charges"] = rng.normal(scale=0.1, size=len(a))
        a.set_tags([0 if k < 2 else 1 for k in range(len(a))])
        a.info["config_type"] = f.config_type
        a.info["config_weight"] = 1.0 + 0.25 * (i % 3)
        images.append(a)
    images[3:3] = [_isolated(z, E0[z]) for z in isolated]
    write(path, images, format="extxyz")
    return path


KEYS = {
    "energy_key": "my_energy",
    "forces_key": "my_forces",
    "stress_key": "my_stress",
    "charges_key": "my_charges",
}


def _config(train_file, **data) -> RunConfig:
    return RunConfig.from_dict(
        tiny_run_config(train_file=str(train_file), batch_size=4, valid_fraction=0.25, **data)
    )


def _store(tmp_path, src, name="store", **data) -> Path:
    out = tmp_path / name
    preprocess([src], out, shard_size=5, spec=DataConfig.from_dict(dict(data)).spec())
    return out


# ---- defect 1: with a store, data.e0_file and the stress check were ignored ----


def test_a_store_takes_its_e0s_from_the_e0_file(tmp_path):
    src = _write_set(tmp_path / "set.xyz", isolated=())
    e0_file = tmp_path / "e0.xyz"
    write(e0_file, [_isolated(z, e) for z, e in E0.items()], format="extxyz")
    store = _store(tmp_path, src, **KEYS)
    from_store = prepare_data(_config(store, e0_file=str(e0_file), **KEYS))
    from_files = prepare_data(_config(src, e0_file=str(e0_file), **KEYS))
    for prepared in (from_store, from_files):
        assert prepared.model_config["atomic_numbers"] == [29, 79]
        assert prepared.model_config["atomic_energies"] == [E0[29], E0[79]]


def test_a_store_gets_the_stress_check(tmp_path):
    from ase.calculators.emt import EMT

    base = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    base.rattle(0.03, seed=0)
    images = []
    for i, j, e in [(0, 0, 0.0), (0, 0, 0.01), (1, 1, -0.01), (0, 1, 0.01), (1, 2, 0.01), (2, 2, 0.012)]:
        a = base.copy()
        grad = np.eye(3)
        grad[i, j] += e
        a.set_cell(base.cell.array @ grad.T, scale_atoms=True)
        a.calc = EMT()
        a.info.update(my_energy=a.get_potential_energy(), my_stress=-a.get_stress())  # the sign flipped
        a.arrays["my_forces"] = a.get_forces()
        a.calc = None
        images.append(a)
    write(tmp_path / "set.xyz", images, format="extxyz")
    keys = {k: v for k, v in KEYS.items() if k != "charges_key"}
    store = _store(tmp_path, tmp_path / "set.xyz", **keys)
    for train_file in (tmp_path / "set.xyz", store):
        with pytest.raises(
            MLIPInputError, match="stress labels disagree .* set data.stress_transform: negate"
        ):
            prepare_data(_config(train_file, valid_last=1, **keys))


# ---- defect 2: isolated atoms were never split out of a store ----


def test_isolated_atoms_leave_the_store_and_give_the_e0s(tmp_path):
    src = _write_set(tmp_path / "set.xyz", isolated=(29, 79))
    store = _store(tmp_path, src, **KEYS)
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["n_frames"] == 16
    assert manifest["isolated_atoms"] == {"29": E0[29], "79": E0[79]}
    prepared = prepare_data(_config(store, **KEYS))
    assert len(prepared.train) + len(prepared.valid) == 16
    assert prepared.model_config["atomic_energies"] == [
        E0[29],
        E0[79],
    ]  # data.e0s unset: isolated atoms found


def test_a_shard_of_isolated_atoms_only_is_not_written(tmp_path):
    src = tmp_path / "set.xyz"
    write(src, [_isolated(29, -0.5, "energy"), _isolated(79, -0.25, "energy")]
          + [f.atoms for f in generate_emt_dataset(2, seed=1)], format="extxyz")  # fmt: skip
    manifest = preprocess([src], tmp_path / "store", shard_size=2)
    assert [s["n_frames"] for s in manifest["shards"]] == [2]
    assert manifest["isolated_atoms"] == {"29": -0.5, "79": -0.25}
    again = preprocess([src], tmp_path / "store", shard_size=2)  # a rerun checks and keeps the shards
    assert again["isolated_atoms"] == manifest["isolated_atoms"]


# ---- defect 3: a store's validation and test files were read without data.mptrj_energy ----


@pytest.mark.skipif(not MPTRJ.exists(), reason="../shared/data/mptrj_sample is not available")
def test_store_validation_and_tests_read_the_mptrj_energy_of_training(tmp_path):
    from mlip.data import read_mptrj_json

    store = _store(tmp_path, MPTRJ, mptrj_energy="corrected")
    cfg = _config(
        store, mptrj_energy="corrected", valid_file=str(MPTRJ), test_files=[str(MPTRJ)], e0s="average"
    )
    prepared = prepare_data(cfg)
    corrected = [f.energy for f in read_mptrj_json(MPTRJ, energy="corrected")]
    for ds in (prepared.valid, prepared.tests[MPTRJ.name]):
        np.testing.assert_allclose(
            [float(ds[i]["energy"]) for i in range(len(ds))], corrected, rtol=0, atol=0
        )


# ---- defect 4: the store's manifest recorded no label keys ----


def test_a_store_records_its_label_keys_and_refuses_others(tmp_path):
    src = _write_set(tmp_path / "set.xyz")
    default_store = _store(tmp_path, src, name="default")  # read with the default keys: info["energy"]
    with pytest.raises(MLIPInputError, match="data.energy_key is 'my_energy' but .* was written with None"):
        prepare_data(_config(default_store, **KEYS))
    keyed = _store(tmp_path, src, name="keyed", **KEYS)
    recorded = json.loads((keyed / "manifest.json").read_text())["data_spec"]["label_keys"]
    assert {k: recorded[k] for k in KEYS} == KEYS
    with pytest.raises(MLIPInputError, match="data.energy_key is None but"):
        prepare_data(_config(keyed))
    prepared = prepare_data(_config(keyed, e0s="average", **KEYS))
    energies = sorted(float(d[i]["energy"]) for d in (prepared.train, prepared.valid) for i in range(len(d)))
    assert energies == sorted(f.energy for f in generate_emt_dataset(16, seed=3))


# ---- defect 5: replay decided "isolated atom" by another rule than training ----


def test_replay_keeps_one_atom_crystals_as_training_does(tmp_path):
    from mlip.data.spec import DataSpec
    from mlip.training.replay import load_replay

    images = []
    for i, a0 in enumerate((3.15, 3.17, 3.19)):
        a = bulk("Mo", "bcc", a=a0)  # one atom, periodic: a crystal, not an isolated atom
        a.info.update({"energy": -10.9 + 0.01 * i, "stress": np.zeros(6)})
        a.arrays["forces"] = np.zeros((1, 3))
        images.append(a)
    images.append(_isolated(42, -0.6, "energy"))
    write(tmp_path / "replay.xyz", images, format="extxyz")
    d = DataConfig(replay_file=str(tmp_path / "replay.xyz"), replay_fraction=1.0)
    ds = load_replay(d, DataSpec(), 4.0, [42])
    assert len(ds) == 3
    train, _, _, isolated = __import__("mlip.training.prepare", fromlist=["load_frames"]).load_frames(
        DataConfig(train_file=str(tmp_path / "replay.xyz"), valid_last=1)
    )
    assert len(train) == 2
    assert isolated == {42: -0.6}


# ---- defect 6: mlip-eval could not score what an OC20 or MPtrj run trained on ----


@pytest.fixture(scope="module")
def emt_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("model")
    run_training(RunConfig.from_dict(tiny_run_config(emt_frames=8, emt_test_frames=2)), tmp)
    return tmp / "model.pt"


def _oc20_like(tmp_path):
    """A file whose energies are totals of systems with ids (``sid``), a reference file and tag-0 atoms."""
    images = []
    for i, f in enumerate(generate_emt_dataset(6, seed=9)):
        a = f.atoms.copy()
        a.info.update({"energy": f.energy + 50.0 + i, "sid": 1000 + i})
        a.arrays["forces"] = f.forces
        a.set_tags([0] * 4 + [1] * (len(a) - 4))
        images.append(a)
    write(tmp_path / "oc20.xyz", images, format="extxyz")
    (tmp_path / "refs.txt").write_text("".join(f"random{1000 + i},{50.0 + i}\n" for i in range(6)))
    return tmp_path / "oc20.xyz", tmp_path / "refs.txt"


def test_mlip_eval_scores_as_the_run_trained(emt_model, tmp_path):
    from mlip.cli.eval import main
    from mlip.data.spec import DataSpec
    from mlip.training.scoring import score_file

    src, refs = _oc20_like(tmp_path)
    assert main(["--model", str(emt_model), str(src), "--energy-references", str(refs), "--fixed-tags", "0",
                 "--out", str(tmp_path / "flags.json")]) == 0  # fmt: skip
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(f"data:\n  train_file: {src}\n  energy_references: {refs}\n  fixed_tags: [0]\n")
    assert (
        main(
            [
                "--model",
                str(emt_model),
                str(src),
                "--config",
                str(run_yaml),
                "--out",
                str(tmp_path / "c.json"),
            ]
        )
        == 0
    )
    flags = json.loads((tmp_path / "flags.json").read_text())[src.name]
    config = json.loads((tmp_path / "c.json").read_text())[src.name]
    assert flags == config
    spec = DataSpec(keys=LabelKeys(fixed_tags=(0,)), energy_references=str(refs))
    frames, _ = spec.read(src)
    expected, _, _ = score_file(
        frames, __import__("mlip").load_model(emt_model), "x", device="cpu", max_atoms=4096
    )
    assert flags["energy_rmse_mev_per_atom"] == pytest.approx(expected["energy_rmse_mev_per_atom"], rel=1e-12)
    assert flags["energy_rmse_mev_per_atom"] < 1000.0  # the 50 eV offsets were subtracted
    # a label option beside --config is a user error
    assert main(["--model", str(emt_model), str(src), "--config", str(run_yaml), "--energy-key", "E"]) == 2


@pytest.mark.skipif(not MPTRJ.exists(), reason="../shared/data/mptrj_sample is not available")
def test_mlip_eval_reads_the_mptrj_energy_asked_for(tmp_path):
    from mlip.cli.eval import main
    from mlip.data import read_mptrj_json

    run_training(_config(MPTRJ, mptrj_energy="corrected", e0s="average", valid_last=2), tmp_path / "run")
    model = tmp_path / "run" / "model.pt"
    out = {}
    for energy in ("uncorrected", "corrected"):
        path = tmp_path / f"{energy}.json"
        assert main(["--model", str(model), str(MPTRJ), "--mptrj-energy", energy, "--out", str(path)]) == 0
        out[energy] = json.loads(path.read_text())[MPTRJ.name]["energy_rmse_mev_per_atom"]
    frames = {e: read_mptrj_json(MPTRJ, energy=e) for e in ("uncorrected", "corrected")}
    shift = [(a.energy - b.energy) / len(a.atoms) for a, b in zip(frames["uncorrected"], frames["corrected"])]
    assert max(abs(x) for x in shift) > 0.01  # the correction matters (eV/atom)
    assert abs(out["uncorrected"] - out["corrected"]) > 1.0  # meV/atom: the two readings were scored


# ---- the same run from files and from the store ----


class _Batches(Callback):
    def __init__(self):
        self.batches = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append({k: v.detach().clone() for k, v in batch.items()})


def _numbers(tree, prefix="") -> dict:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _numbers(sub, f"{prefix}{key}.").items()}
    return {prefix: tree}


def _train(cfg, run_dir):
    spy = _Batches()
    original = trainers.build_trainer

    def with_spy(c, d):
        trainer = original(c, d)
        trainer.callbacks.append(spy)
        return trainer

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainers, "build_trainer", with_spy)
        metrics = run_training(cfg, run_dir)
    return spy.batches, metrics, prepare_data(cfg).model_config


def _cases(tmp_path, case):
    if case == "extxyz":
        src = _write_set(tmp_path / "set.xyz", n=14, isolated=(29,))
        e0_file = tmp_path / "e0.xyz"
        write(e0_file, [_isolated(79, E0[79])], format="extxyz")
        spec = {**KEYS, "fixed_tags": [0]}
        data = {**spec, "e0_file": str(e0_file), "config_type_weights": {"surface": 3.0},
                "test_files": [str(src)]}  # fmt: skip
        long_range = {"long_range": {"kind": "ewald"}}
        return src, spec, data, long_range, {"charges_weight": 1.0, "stress_weight": 1.0}
    if not MPTRJ.exists():
        pytest.skip("../shared/data/mptrj_sample is not available")
    spec = {"mptrj_energy": "corrected"}
    return MPTRJ, spec, {**spec, "test_files": [str(MPTRJ)], "e0s": "average"}, {}, {}


@pytest.mark.slow
@pytest.mark.parametrize("case", ["extxyz", "mptrj"])
def test_files_and_store_train_the_same_run(tmp_path, case):
    src, spec, data, model, train = _cases(tmp_path, case)
    store = _store(tmp_path, src, **spec)
    raw = tiny_run_config(**data, batch_size=3, valid_fraction=0.25)
    raw["model"].update(model)
    raw["train"].update(train, max_epochs=2)
    runs = {}
    for name, train_file in (("files", src), ("store", store)):
        raw["data"]["train_file"] = str(train_file)
        runs[name] = _train(RunConfig.from_dict(raw), tmp_path / f"run_{name}")
    (a, metrics_a, config_a), (b, metrics_b, config_b) = runs["files"], runs["store"]
    # elements, E0s, shift, scale, neighbours by one statistics routine; sums taken in another order (one chunk in
    # memory, shards of 5 in the store) differ in the last bits
    assert set(config_a) == set(config_b)
    for key, value in config_a.items():
        assert config_b[key] == (
            pytest.approx(value, rel=1e-12, abs=1e-12) if isinstance(value, float) else value
        )
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert set(x) == set(y)
        for key in x:
            torch.testing.assert_close(x[key], y[key], rtol=0, atol=0, msg=key)
    # the same batches train the same weights (up to the shift's last bits), scored on the same frames
    for split in ("valid", "test"):
        flat_a, flat_b = _numbers(metrics_a[split]), _numbers(metrics_b[split])
        assert flat_a.keys() == flat_b.keys()
        for key in flat_a:
            assert flat_b[key] == pytest.approx(flat_a[key], rel=1e-6, abs=1e-9), key
    if case == "extxyz":
        assert config_a["atomic_energies"] == [E0[29], E0[79]]  # the file's isolated Cu, the E0 file's Au
        weights = set(torch.cat([x["weight"] for x in b]).tolist())
        assert weights <= {1.0, 1.25, 1.5, 3.0, 3.75, 4.5}
        assert max(weights) > 2.5
        assert bool((torch.cat([x["forces_mask"] for x in b]) == 0).any())  # tag-0 atoms fixed
        assert bool((torch.cat([x["charges_weight"] for x in b]) > 0).all())
