"""The main job end to end with the smallest settings, as CI can afford it."""

import json
import zipfile

from test_cli import run_cli


def test_demo_runs_end_to_end_and_reuses_finished_steps(tmp_path):
    out = tmp_path / "demo"
    first = run_cli("demo", "--small", "--out", out)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "validation (tuned rows out-of-fold by video)" in first.stdout and "test (held-out labels)" in first.stdout
    for name in ("cnn_test_resnet", "cnn_rnn", "cnn_transformer", "vote + post", "average + post", "stack + post"):
        assert name in first.stdout
    for task in ("expr", "va", "au"):
        with zipfile.ZipFile(out / "submissions" / task / "submission.zip") as zf:
            assert len(zf.namelist()) == 2  # one file per test video
    scores = json.loads((out / "scores.json").read_text())
    assert {r["name"] for r in scores["test"]} >= {"cnn_rnn", "stack + post"}
    again = run_cli("demo", "--small", "--out", out)
    assert again.returncode == 0
    assert "training cnn" in again.stderr and "predicting" not in again.stderr  # predictions reused
