"""data.config_type_weights: read from extxyz ``config_type``, applied to training frames in both data paths."""

import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from test_training import TINY  # tests/training is on sys.path (pytest's default "prepend" import mode)

from mlip import keys as K
from mlip.data import generate_emt_dataset
from mlip.data.preprocess import preprocess
from mlip.training.config import RunConfig
from mlip.training.run import prepare_data

MODEL = TINY["model"]


@pytest.fixture(scope="module")
def xyz(tmp_path_factory):
    """24 EMT frames, types rattled / strained / vacancy / surface in turn, as an extxyz file."""
    frames = generate_emt_dataset(24, seed=5)
    images = []
    for f in frames:
        a = f.atoms.copy()
        a.info["config_type"] = f.config_type
        a.calc = SinglePointCalculator(a, energy=f.energy, forces=f.forces)
        images.append(a)
    path = tmp_path_factory.mktemp("ct") / "emt.extxyz"
    write(path, images)
    return path


def _weights(dataset):
    return [float(dataset[i][K.WEIGHT]) for i in range(len(dataset))]


def _types(path, indices):
    from ase.io import read

    frames = read(path, ":")
    return [frames[i].info["config_type"] for i in indices]


def test_listed_types_are_weighted_in_the_training_set(xyz):
    cfg = RunConfig.from_dict(
        {
            "model": MODEL,
            "data": {"train_file": str(xyz), "valid_last": 4, "config_type_weights": {"surface": 3.0}},
        }
    )
    data = prepare_data(cfg)
    types = _types(xyz, range(20))
    assert _weights(data.train) == [3.0 if t == "surface" else 1.0 for t in types]
    assert set(_weights(data.valid)) == {1.0}  # validation metrics stay unweighted


def test_a_type_no_training_frame_has_is_refused(xyz):
    cfg = RunConfig.from_dict(
        {
            "model": MODEL,
            "data": {"train_file": str(xyz), "valid_last": 4, "config_type_weights": {"surfce": 3.0}},
        }
    )
    with pytest.raises(ValueError, match=r"config_type_weights names \['surfce'\].*'surface'"):
        prepare_data(cfg)


def test_preprocessed_data_are_weighted_too(xyz, tmp_path):
    preprocess([xyz], tmp_path / "store", shard_size=7)
    cfg = RunConfig.from_dict(
        {
            "model": MODEL,
            "data": {
                "train_file": str(tmp_path / "store"),
                "valid_last": 4,
                "config_type_weights": {"vacancy": 0.5},
            },
        }
    )
    data = prepare_data(cfg)
    types = [data.train.meta(i)["config_type"] for i in range(len(data.train))]
    assert _weights(data.train) == [0.5 if t == "vacancy" else 1.0 for t in types]
    assert types.count("vacancy") > 0
    bad = RunConfig.from_dict(
        {
            "model": MODEL,
            "data": {"train_file": str(tmp_path / "store"), "config_type_weights": {"melt": 2.0}},
        }
    )
    with pytest.raises(ValueError, match="melt"):
        prepare_data(bad)
