"""``python train.py [--config FILE.yaml] [--run-dir DIR] [--resume [CKPT]] [--trainer.devices N]
[--trainer.num_nodes N] [--trainer.strategy S] [--trainer.accelerator A] [section.key=value ...]``.

YAML is read here and nowhere else. Overrides use dotted keys, values parsed as YAML
(``train.max_epochs=5``, ``model.channels=64``, ``data.test_files=[a.xyz,b.xyz]``). The ``--trainer.*`` flags are
Lightning-style spellings of ``train.devices=``, ``train.num_nodes=``, ``train.strategy=`` and
``train.accelerator=``, applied after the YAML file and before the overrides. An override merges into the section
it names: ``model.channels=64`` changes one field of the YAML's model, or of the default job's model
(:data:`~mlip.training.config.DEFAULT_MODEL`) when the YAML has none.

User errors (a bad config value, a missing file, a run directory in use) print one line and exit with status 2;
``--debug`` shows their traceback.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import re
import sys
from pathlib import Path

import yaml

from mlip.cli import add_debug_flag, console_main
from mlip.errors import MLIPFileNotFoundError, MLIPInputError
from mlip.training.config import DEFAULT_MODEL, RunConfig
from mlip.training.run import run_training

_OVERRIDE = re.compile(r"^(model|data|train)\.[A-Za-z_][\w.]*=")


__all__ = ["apply_override", "parse_args", "raw_config", "main", "TRAINER_FLAGS"]


def apply_override(raw: dict, item: str) -> None:
    """Set ``raw[a][b] = yaml(value)`` for ``item = "a.b=value"``."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise MLIPInputError(f"override {item!r} is not of the form section.key=value")
    key, value = item.split("=", 1)
    parts = key.split(".")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise MLIPInputError(f"override {item!r}: {p} is not a section")
    try:
        node[parts[-1]] = yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise MLIPInputError(f"override {item!r}: the value is not valid YAML ({err.problem})") from None


#: Launch flags of train.py that set a train.* key: (flag, type, help).
TRAINER_FLAGS = (
    ("devices", int, "processes (GPUs) per node: train.devices"),
    ("num_nodes", int, "nodes: train.num_nodes"),
    ("strategy", str, "Lightning strategy, e.g. ddp: train.strategy"),
    ("accelerator", str, "cpu, gpu, cuda or auto: train.accelerator"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config", help="YAML file with sections model, data, train (default: built-in EMT job)"
    )
    parser.add_argument("--run-dir", help="output directory (default runs/<timestamp>)")
    parser.add_argument(
        "--resume", nargs="?", const="last", help="resume from CKPT (default: RUN_DIR/checkpoints/last.ckpt)"
    )
    for flag, kind, what in TRAINER_FLAGS:
        parser.add_argument(f"--trainer.{flag}", dest=f"trainer_{flag}", type=kind, help=what)
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    resume = args.resume
    if resume is not None and _OVERRIDE.match(resume) and not Path(resume).exists():
        # ``--resume train.max_epochs=5``: argparse took the override for the checkpoint path
        args.overrides.insert(0, resume)
        args.resume = "last"
    return args


def _read_yaml(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise MLIPFileNotFoundError(f"--config {path}: no such file")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise MLIPInputError(f"{path}{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
    except UnicodeDecodeError as err:
        raise MLIPInputError(f"{path}: not a text file ({err.reason})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise MLIPInputError(f"{path}: a config must be a mapping with sections model, data, train")
    return raw


def raw_config(args: argparse.Namespace) -> dict:
    """The run's configuration dictionary: the YAML file, then the ``--trainer.*`` flags, then the overrides.

    Overrides merge into the section they name; ``model.*`` overrides without a model section in the YAML merge
    into the default job's model, unless the run starts from a model file (``train.init_from``), whose model they
    then describe."""
    raw: dict = _read_yaml(args.config) if args.config else {}
    fine_tuning = (raw.get("train") or {}).get("init_from") or any(
        item.startswith("train.init_from=") for item in args.overrides
    )
    if not raw.get("model") and any(item.startswith("model.") for item in args.overrides) and not fine_tuning:
        raw["model"] = copy.deepcopy(DEFAULT_MODEL)
    for flag, _, _ in TRAINER_FLAGS:
        value = getattr(args, f"trainer_{flag}")
        if value is not None:
            raw.setdefault("train", {})[flag] = value
    for item in args.overrides:
        apply_override(raw, item)
    return raw


@console_main("train.py")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = RunConfig.from_dict(raw_config(args))
    run_dir = Path(args.run_dir or Path("runs") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    metrics = run_training(cfg, run_dir, resume=args.resume)
    if metrics is not None:
        print(json.dumps(metrics, indent=2))
        print(
            f"\nmodel:   {run_dir / 'model.pt'}\nmetrics: {run_dir / 'metrics.json'}\nplot:    {run_dir / 'parity.png'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
