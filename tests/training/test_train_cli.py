"""train.py's command line: YAML, then the Lightning-style --trainer.* flags, then dotted overrides."""

import pytest
import yaml

from mlip.errors import MLIPInputError
from mlip.training.cli import parse_args, raw_config
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
