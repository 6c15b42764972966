"""The main job end to end with the smallest settings, as CI can afford it."""

import base64
import json
import re
import zipfile

from helpers import run_here


def test_demo_runs_end_to_end_and_reuses_finished_steps(tmp_path):
    out = tmp_path / "demo"
    first = run_here("demo", "--small", "--out", out)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "validation (tuned rows out-of-fold by video)" in first.stdout and "test (held-out labels)" in first.stdout
    for name in (
        "cnn_test_resnet",
        "committee",
        "cnn_rnn",
        "cnn_transformer",
        "vote + post",
        "average + post",
        "stack + post",
    ):
        assert name in first.stdout
    for task, header in (
        ("expr", "image_location,Neutral"),
        ("va", "image_location,valence"),
        ("au", "image_location,AU1"),
    ):
        with zipfile.ZipFile(out / "submissions" / task / "submission.zip") as zf:  # the default edition: one file
            assert zf.namelist() == ["predictions.txt"] and zf.read("predictions.txt").startswith(header.encode())
    assert "edition ABAW10 (CVPR 2026) (the default)" in first.stderr
    page = (out / "report.html").read_text()
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == page.count("<img") == 5
    assert all(base64.b64decode(b).startswith(b"\x89PNG") and len(b) > 1000 for b in images)
    scores = json.loads((out / "scores.json").read_text())
    assert {r["name"] for r in scores["test"]} >= {"cnn_rnn", "stack + post"}
    again = run_here("demo", "--small", "--out", out)
    assert again.returncode == 0
    assert "training cnn" in again.stderr and "predicting" not in again.stderr  # predictions reused
