"""``python train.py [--config FILE.yaml] [--run-dir DIR] [--resume [CKPT]] [section.key=value ...]``.

YAML is read here and nowhere else. Overrides use dotted keys, values parsed as YAML
(``train.max_epochs=5``, ``model.channels=64``, ``data.test_files=[a.xyz,b.xyz]``).
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config", help="YAML file with sections model, data, train (default: built-in EMT job)"
    )
    parser.add_argument("--run-dir", help="output directory (default runs/<timestamp>)")
    parser.add_argument(
        "--resume", nargs="?", const="last", help="resume from CKPT (default: RUN_DIR/checkpoints/last.ckpt)"
    )
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raw: dict = {}
    if args.config:
        with open(args.config) as fh:
            raw = yaml.safe_load(fh) or {}
    for item in args.overrides:
        apply_override(raw, item)
    cfg = RunConfig.from_dict(raw)
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
