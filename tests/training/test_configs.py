"""Every shipped YAML config parses, its model section validates, and the data files it names exist."""

from pathlib import Path

import pytest
import yaml

from mlip.models.registry import REGISTRY
from mlip.training.config import RunConfig

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert len(CONFIGS) >= 9


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_is_valid(path):
    raw = yaml.safe_load(path.read_text())
    cfg = RunConfig.from_dict(raw)
    model = {**cfg.model, "atomic_numbers": [1, 8], "atomic_energies": [0.0, 0.0]}
    config_cls, _ = REGISTRY[model["name"]]
    config_cls.from_dict(model)  # validates every field without building the network
    for name in ("train_file", "valid_file"):
        value = getattr(cfg.data, name)
        if value is not None:
            assert (ROOT / value).exists(), f"{path.name}: {name} {value} does not exist"
