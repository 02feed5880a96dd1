"""``mlip-eval --model PATH FILE... [--out metrics.json] [--energy-key K] [--forces-key K] [--stress-key K]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlip.data import GraphDataset, LabelKeys, make_loader, read_frames, split_isolated_atoms
from mlip.models import load_model
from mlip.training.metrics import evaluate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mlip-eval", description="Error metrics of a model on labelled files.")
    p.add_argument("files", nargs="+")
    p.add_argument("--model", required=True)
    p.add_argument("--out", default=None, help="write the metrics JSON here")
    p.add_argument("--energy-key")
    p.add_argument("--forces-key")
    p.add_argument("--stress-key")
    p.add_argument("--virials-key")
    p.add_argument("--charges-key")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    model = load_model(args.model, device=args.device)
    keys = LabelKeys(
        energy_key=args.energy_key,
        forces_key=args.forces_key,
        stress_key=args.stress_key,
        virials_key=args.virials_key,
        charges_key=args.charges_key,
    )
    results = {}
    for f in args.files:
        frames, _ = split_isolated_atoms(read_frames(f, keys))
        ds = GraphDataset(frames, model.r_max, name=Path(f).name)
        results[Path(f).name] = evaluate(
            model, make_loader(ds, batch_size=args.batch_size, shuffle=False)
        ).metrics()
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
