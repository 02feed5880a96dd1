"""Fine-tuning (mlip.training.finetune, replay, committee_run): init_from keeps the model's function and extends
it to new elements, freeze and lr_groups select parameters, adapters train and merge, multihead replay trains a
second head on one trunk, a committee trains in one command; bad requests fail with one clear line."""

import json

import ase.io
import pytest
import torch

from mlip.data import GraphDataset, collate, generate_emt_dataset
from mlip.errors import MLIPInputError
from mlip.models import build_model, load_model
from mlip.models.committee import load_committee
from mlip.training.config import RunConfig
from mlip.training.finetune import InitModel, extended_state, parameter_groups
from mlip.training.run import run_training

TINY = {
    "model": {"name": "mace", "r_max": 4.0, "channels": 8, "max_ell": 1, "max_L": 1, "correlation": 2,
              "radial_mlp": [8]},
    "data": {"emt_frames": 12, "emt_test_frames": 2, "batch_size": 4},
    "train": {"max_epochs": 2, "progress_bar": False, "log_every_n_steps": 1, "refit_e0s": "none"},
}  # fmt: skip


def _cfg(model=None, data=None, **train) -> RunConfig:
    return RunConfig.from_dict(
        {
            "model": {}  # with init_from: the file's model
            if model == {}
            else model
            if "name" in (model or {})
            else {**TINY["model"], **(model or {})},
            "data": {**TINY["data"], **(data or {})},
            "train": {**TINY["train"], **train},
        }
    )


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    run = tmp_path_factory.mktemp("pre")
    run_training(_cfg(), run)
    return run / "model.pt"


@pytest.fixture(scope="module")
def emt_batch():
    frames = generate_emt_dataset(4, seed=3)
    return collate([GraphDataset(frames, 4.0)[i] for i in range(4)])


def _state(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_new_elements_extend_the_model_without_changing_it_on_old_ones(pretrained, emt_batch):
    payload = torch.load(pretrained, weights_only=True)
    init = InitModel(path=str(pretrained), config=payload["config"], state=payload["state_dict"])
    old = load_model(pretrained)
    config = {
        **payload["config"],
        "atomic_numbers": [13, 29, 79],
        "atomic_energies": [-3.0, *init.e0s.values()],
    }
    new = build_model(config)
    state = extended_state(init, new)
    assert state["embedding"].shape[0] == 3
    assert torch.equal(state["embedding"][1:], payload["state_dict"]["embedding"])  # Cu, Au rows moved by one
    new.load_state_dict(state)
    new.eval()
    e_old, e_new = old(emt_batch)["energy"], new(emt_batch)["energy"]
    assert torch.allclose(e_old, e_new, rtol=0, atol=1e-9 * float(e_old.abs().max()))


def test_init_from_starts_at_the_file_and_freeze_keeps_weights(pretrained, tmp_path):
    cfg = _cfg(model={}, init_from=str(pretrained), freeze=["interactions.*", "embedding"], max_epochs=1,
               ema_decay=None)  # fmt: skip
    metrics = run_training(cfg, tmp_path)
    before, after = _state(pretrained), _state(tmp_path / "model.pt")
    assert set(before) == set(after)
    frozen = [k for k in before if k.startswith("interactions.") or k == "embedding"]
    trained = [k for k in before if k.startswith("products.") and before[k].is_floating_point()]
    assert frozen
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in trained)
    assert metrics["parameters"]["trainable"] < metrics["parameters"]["total"]
    prov = torch.load(tmp_path / "model.pt", weights_only=True)["provenance"]
    assert prov["init_from"] == str(pretrained)


def test_lr_groups_set_each_group_rate():
    model = build_model({**TINY["model"], "atomic_numbers": [29], "atomic_energies": [0.0]})
    groups = parameter_groups(model, 0.01, {"readouts.*": 0.1, "products.*": 0.001})
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates == {"readouts.*": 0.1, "products.*": 0.001, "default": 0.01}
    n = sum(len(g["params"]) for g in groups)
    assert n == len(list(model.parameters()))
    with pytest.raises(MLIPInputError, match=r"train.lr_groups: pattern 'readout\.\*' matches no parameter"):
        parameter_groups(model, 0.01, {"readout.*": 0.1})


@pytest.mark.parametrize("kind", ["lora", "tucker"])
def test_adapter_fine_tuning_writes_a_merged_model(pretrained, tmp_path, kind):
    cfg = _cfg(model={}, init_from=str(pretrained), adapter={"kind": kind, "rank": 2}, max_epochs=1)
    metrics = run_training(cfg, tmp_path)
    model = load_model(tmp_path / "model.pt")  # an ordinary model file
    assert model.config.channels == 8
    report = metrics["adapter"]
    assert report["kind"] == kind
    assert report["adapter_parameters"] > 0
    assert report["trainable_parameters"] < report["base_parameters"]
    before, after = _state(pretrained), _state(tmp_path / "model.pt")
    # embedding is neither adapted nor trainable: unchanged; some adapted weight changed
    assert torch.equal(before["embedding"], after["embedding"])
    assert any(not torch.equal(before[k], after[k]) for k in report["adapted"])


def test_multihead_replay_trains_two_heads_on_one_trunk(pretrained, tmp_path):
    replay = tmp_path / "replay.xyz"
    _write_emt(replay, 10, seed=7)
    run = tmp_path / "run"
    cfg = _cfg(model={}, data={"replay_file": str(replay), "replay_fraction": 0.5, "replay_batch_size": 2},
               init_from=str(pretrained), max_epochs=2, replay_weight=0.5)  # fmt: skip
    run_training(cfg, run)
    main, head = load_model(run / "model.pt"), load_model(run / "model_replay_head.pt")
    pre = load_model(pretrained)
    assert torch.equal(head.atomic_energies, pre.atomic_energies)  # the pretraining head keeps its E0s
    ms, hs = main.state_dict(), head.state_dict()
    trunk = [k for k in ms if not k.startswith("readouts.") and k != "atomic_energies"]
    assert all(torch.equal(ms[k], hs[k]) for k in trunk)  # one trunk
    assert any(not torch.equal(ms[k], hs[k]) for k in ms if k.startswith("readouts."))  # two heads
    history = (run / "logs" / "metrics.csv").read_text()
    assert "train/replay_loss" in history


def test_replay_needs_init_from():
    with pytest.raises(MLIPInputError, match="data.replay_file needs train.init_from"):
        _cfg(data={"replay_file": "x.xyz"})


def test_adapters_need_init_from():
    """Issue 33 (12): adapters on a new model trained on frozen random weights without a word."""
    with pytest.raises(MLIPInputError, match="train.adapter needs train.init_from"):
        _cfg(adapter={"kind": "lora", "rank": 2})


def test_init_from_another_backbone_is_refused(pretrained, tmp_path):
    cfg = _cfg(model={"name": "facet"}, init_from=str(pretrained))
    with pytest.raises(MLIPInputError, match=r"is a 'mace' model, but model.name is 'facet'"):
        run_training(cfg, tmp_path)


def test_init_from_with_another_architecture_is_refused(pretrained, tmp_path):
    cfg = _cfg(model={"channels": 16}, init_from=str(pretrained))
    with pytest.raises(
        MLIPInputError,
        match=r"model.channels is 16 in the config but 8 in train.init_from.*drop model.channels",
    ):
        run_training(cfg, tmp_path)


def test_freezing_a_pattern_that_matches_nothing_is_refused(pretrained, tmp_path):
    cfg = _cfg(model={}, init_from=str(pretrained), freeze=["interaction.*"])
    with pytest.raises(MLIPInputError, match=r"train.freeze: pattern 'interaction\.\*' matches no parameter"):
        run_training(cfg, tmp_path)


def test_init_refit_e0s_moves_the_references(pretrained, tmp_path):
    cfg = _cfg(model={}, data={"e0s": {"Cu": 0.0, "Au": 0.0}}, init_from=str(pretrained), init_refit_e0s=True,
               max_epochs=1, lr=1e-6)  # fmt: skip
    run_training(cfg, tmp_path)
    e0 = load_model(tmp_path / "model.pt").atomic_energies
    assert (e0.abs() > 1e-3).all()  # fitted away from the zeros given


def test_committee_trains_members_and_scores_them(tmp_path):
    metrics = run_training(_cfg(committee=2, max_epochs=1), tmp_path)
    members = load_committee(tmp_path / "committee.pt")
    assert len(members) == 2
    a, b = (m.state_dict()["embedding"] for m in members)
    assert not torch.equal(a, b)  # different seeds
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert len(saved["members"]) == 2 == len(metrics["members"])
    c = saved["committee"]["valid"]["committee"]
    assert -1.0 <= c["forces_std_error_spearman"] <= 1.0
    with pytest.raises(MLIPInputError, match="already holds committee members"):
        run_training(_cfg(committee=2, max_epochs=1), tmp_path)
    again = run_training(
        _cfg(committee=2, max_epochs=1), tmp_path, resume="last"
    )  # finished members are kept
    assert again["members"] == saved["members"]


def test_a_committee_file_is_a_committee_for_the_calculator(tmp_path):
    from mlip.calculators import MLIPCalculator

    run_training(_cfg(committee=2, max_epochs=1), tmp_path)
    atoms = generate_emt_dataset(1, seed=11)[0].atoms
    atoms.calc = MLIPCalculator(str(tmp_path / "committee.pt"))
    atoms.get_potential_energy()
    assert atoms.calc.results["energy_var"] >= 0.0
    with pytest.raises(MLIPInputError, match="is a committee of 2 models"):
        load_model(tmp_path / "committee.pt")
    payload = torch.load(tmp_path / "committee.pt", weights_only=True)
    payload["members"][1]["state_dict"]["embedding"] += 1.0  # altered after it was written
    torch.save(payload, tmp_path / "altered.pt")
    with pytest.raises(MLIPInputError, match="altered.pt member 1 is damaged: its checksum"):
        MLIPCalculator(str(tmp_path / "altered.pt"))


def _write_emt(path, n, seed):
    atoms = []
    for f in generate_emt_dataset(n, seed=seed):
        a = f.atoms.copy()
        a.info["REF_energy"] = f.energy
        a.arrays["REF_forces"] = f.forces
        atoms.append(a)
    ase.io.write(path, atoms, format="extxyz")


def test_replay_samples_hold_only_the_sample(tmp_path):
    from mlip.data import LabelKeys
    from mlip.data.preprocess import preprocess
    from mlip.data.store import PreprocessedDataset
    from mlip.training.config import DataConfig
    from mlip.training.replay import FrameGraphs, load_replay

    _write_emt(tmp_path / "r.xyz", 20, seed=5)
    d = DataConfig(replay_file=str(tmp_path / "r.xyz"), replay_fraction=0.25)
    ds = load_replay(d, LabelKeys(), 4.0, [29, 79])
    assert isinstance(ds, FrameGraphs)
    assert len(ds) == 5  # only the sampled frames are held
    preprocess([tmp_path / "r.xyz"], tmp_path / "store", shard_size=6, workers=1)
    d = DataConfig(replay_file=str(tmp_path / "store"), replay_fraction=0.5, replay_max_frames=7)
    ds = load_replay(d, LabelKeys(), 4.0, [29, 79])
    assert isinstance(ds, PreprocessedDataset)  # streamed from the shards: indices, no frames
    assert len(ds) == 7
    assert len(set(ds.indices.tolist())) == 7
    with pytest.raises(MLIPInputError, match=r"has elements \[79\] that the model"):
        load_replay(d, LabelKeys(), 4.0, [29])


def test_fine_tuning_an_imported_mace_torch_model(tmp_path):
    from pathlib import Path

    from mlip.interop.mace_import import model_from_export
    from mlip.models import save_model

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "mace" / "tiny"
    save_model(model_from_export(fixture), tmp_path / "imported.pt")
    cfg = _cfg(model={}, init_from=str(tmp_path / "imported.pt"), init_refit_e0s=True, max_epochs=1,
               adapter={"kind": "tucker", "rank": 2})  # fmt: skip
    metrics = run_training(cfg, tmp_path / "run")
    tuned = load_model(tmp_path / "run" / "model.pt")
    assert tuned.config.first_interaction == "agnostic"  # mace-torch's block layout carried over
    assert tuned.atomic_numbers == [1, 6, 8, 14, 29, 79]
    assert metrics["valid"]["forces_rmse_mev_per_A"] > 0


def test_init_model_config_keeps_or_replaces_the_file_e0s():
    from mlip.training.finetune import init_model_config

    init = InitModel(path="m.pt", config={"name": "mace", "atomic_numbers": [29, 79], "atomic_energies": [-1.0, -2.0],
                                          "dtype": "float64", "channels": 8}, state={})  # fmt: skip
    kept = init_model_config(init, {}, "float32", {13: -3.0, 29: -9.0}, keep_file_e0s=True)
    assert kept["atomic_numbers"] == [13, 29, 79]
    assert kept["atomic_energies"] == [-3.0, -1.0, -2.0]  # the file's Cu and Au, the new data's Al
    assert kept["dtype"] == "float32"
    assert kept["channels"] == 8
    replaced = init_model_config(
        init, {"dtype": "float64"}, "float32", {13: -3.0, 29: -9.0}, keep_file_e0s=False
    )
    assert replaced["atomic_energies"] == [-3.0, -9.0, -2.0]  # the new data's wherever it has them
    assert replaced["dtype"] == "float64"
