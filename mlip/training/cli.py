"""``python train.py [--config FILE.yaml] [--run-dir DIR] [--resume [CKPT]] [--trainer.devices N]
[--trainer.num_nodes N] [--trainer.strategy S] [--trainer.accelerator A] [section.key=value ...]``.

YAML is read here and nowhere else. Overrides use dotted keys, values parsed as YAML
(``train.max_epochs=5``, ``model.channels=64``, ``data.test_files=[a.xyz,b.xyz]``). The ``--trainer.*`` flags are
Lightning-style spellings of ``train.devices=``, ``train.num_nodes=``, ``train.strategy=`` and
``train.accelerator=``, applied after the YAML file and before the overrides.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import yaml

from mlip.training.config import RunConfig


def apply_override(raw: dict, item: str) -> None:
    """Set ``raw[a][b] = yaml(value)`` for ``item = "a.b=value"``."""
    if "=" not in item:
        raise SystemExit(f"override {item!r} is not of the form section.key=value")
    key, value = item.split("=", 1)
    parts = key.split(".")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise SystemExit(f"override {item!r}: {p} is not a section")
    node[parts[-1]] = yaml.safe_load(value)


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
    return parser.parse_args(argv)


def raw_config(args: argparse.Namespace) -> dict:
    """The run's configuration dictionary: the YAML file, then the ``--trainer.*`` flags, then the overrides."""
    raw: dict = {}
    if args.config:
        with open(args.config) as fh:
            raw = yaml.safe_load(fh) or {}
    for flag, _, _ in TRAINER_FLAGS:
        value = getattr(args, f"trainer_{flag}")
        if value is not None:
            raw.setdefault("train", {})[flag] = value
    for item in args.overrides:
        apply_override(raw, item)
    return raw


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = RunConfig.from_dict(raw_config(args))
    run_dir = Path(args.run_dir or Path("runs") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    from mlip.training.run import run_training

    metrics = run_training(cfg, run_dir, resume=args.resume)
    if metrics is not None:
        print(json.dumps(metrics, indent=2))
        print(
            f"\nmodel:   {run_dir / 'model.pt'}\nmetrics: {run_dir / 'metrics.json'}\nplot:    {run_dir / 'parity.png'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
