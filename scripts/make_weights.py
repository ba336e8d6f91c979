"""Train the reference models of Chapter 9 and write them into course/compression/weights/.

    PYTHONPATH=. python scripts/make_weights.py [--only teacher] [--threads 1]

Each model of ``course.compression.weights.REFERENCE`` is built with ``torch.manual_seed(seed)``,
trained with ``course.train.fit`` on ``course.data.shapes()`` (the synthetic dataset, default
arguments) with its recipe, and saved as a float32 state dict (``<name>.pt``). The script then
measures the test accuracy of the saved file as loaded by ``load_reference`` and records it,
with training time, MACs and parameters, in ``manifest.json`` (the unit tests check that accuracy
again). Training takes minutes per model on a laptop CPU; results vary slightly with the
machine and thread count (float summation order), the recorded accuracy is that of the file.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course.compression.weights import FOLDER, REFERENCE, load_reference  # noqa: E402
from course.cost import count  # noqa: E402
from course.data import shapes  # noqa: E402
from course.train import evaluate, fit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(REFERENCE), help="train only these models")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    data = shapes()
    FOLDER.mkdir(parents=True, exist_ok=True)
    path = FOLDER / "manifest.json"
    for name in args.only or sorted(REFERENCE):
        ref = REFERENCE[name]
        torch.manual_seed(ref.seed)
        model = ref.build()
        result = fit(model, data, epochs=ref.epochs, batch_size=ref.batch_size, lr=ref.lr, seed=ref.seed,
                     threads=args.threads)
        torch.save(model.state_dict(), ref.file)
        loaded = load_reference(name)
        accuracy = evaluate(loaded, data.test_x, data.test_y)
        cost = count(loaded, torch.zeros(1, 3, 32, 32))
        record = json.loads(path.read_text()) if path.exists() else {}  # another run may have written meanwhile
        record[name] = {
            "accuracy": round(accuracy, 2),
            "dataset": data.description,
            "epochs": ref.epochs, "batch_size": ref.batch_size, "lr": ref.lr, "seed": ref.seed,
            "train_s": round(result.train_s, 1), "threads": result.threads,
            "macs": cost.macs, "params": cost.params, "bytes": ref.file.stat().st_size,
            "torch": torch.__version__, "machine": platform.machine(),
        }
        print(f"{name}: {result} -> saved file {accuracy:.2f}% ({ref.file.stat().st_size / 1e6:.2f} MB)", flush=True)
        path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
