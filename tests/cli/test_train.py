"""train.py's command line: YAML, then the Lightning-style --trainer.* flags, then dotted overrides."""

import pytest
import yaml

from mlip.cli.train import parse_args, raw_config
from mlip.errors import MLIPInputError
from mlip.training.config import RunConfig


def test_trainer_flags_set_the_train_section_and_overrides_win(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"train": {"devices": 1, "lr": 0.01}}))
    args = parse_args(
        ["--config", str(cfg), "--trainer.devices", "4", "--trainer.num_nodes", "2", "--trainer.strategy", "ddp",
         "--trainer.accelerator", "gpu", "train.lr=0.02", "train.strategy=ddp_find_unused_parameters_true"]
    )  # fmt: skip
    raw = raw_config(args)
    assert raw["train"] == {
        "devices": 4,
        "num_nodes": 2,
        "strategy": "ddp_find_unused_parameters_true",
        "accelerator": "gpu",
        "lr": 0.02,
    }
    train = RunConfig.from_dict(raw).train
    assert (train.devices, train.num_nodes, train.accelerator) == (4, 2, "gpu")


def test_a_malformed_override_is_refused():
    with pytest.raises(MLIPInputError, match="section.key=value"):
        raw_config(parse_args(["train.lr"]))
    with pytest.raises(SystemExit):
        parse_args(["--trainer.devices", "two"])


def test_ctrl_c_exits_130_with_a_resume_hint(tmp_path, monkeypatch, capsys):
    """Issue 33 (noticed): after Ctrl-C, train.py exited 1 (Lightning's sys.exit) without saying how to go on."""
    from mlip.cli.train import main
    from mlip.training.module import PotentialModule

    original, steps = PotentialModule.training_step, []

    def interrupted(self, *args, **kwargs):
        steps.append(1)
        if len(steps) == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PotentialModule, "training_step", interrupted)
    cfg = tmp_path / "c.yaml"
    tiny = {"name": "mace", "r_max": 4.0, "channels": 4, "max_ell": 1, "correlation": 2, "radial_mlp": [8]}
    cfg.write_text(yaml.safe_dump({"model": tiny, "data": {"emt_frames": 12, "emt_test_frames": 2, "batch_size": 4},
                                   "train": {"max_epochs": 3, "progress_bar": False}}))  # fmt: skip
    assert main(["--config", str(cfg), "--run-dir", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        err
        == f"train.py: interrupted; continue with --resume --run-dir {tmp_path / 'run'} (from its last checkpoint)"
    )
