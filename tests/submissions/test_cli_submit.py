"""``affect-ens submit`` and ``validate-submission`` as a user runs them."""

import pandas as pd
from helpers import COUNTS, ROWS_12, table_for
from test_cli import run_cli

from ensemble.contract import write_table


def _inputs(tmp_path):
    fused = write_table(table_for(2025, ROWS_12), tmp_path / "fused.parquet")
    manifest = tmp_path / "test_frames.csv"
    pd.DataFrame({"video": list(COUNTS), "frames": list(COUNTS.values())}).to_csv(manifest, index=False)
    return fused, manifest


def test_submit_then_validate(tmp_path):
    fused, manifest = _inputs(tmp_path)
    out = tmp_path / "sub"
    result = run_cli("submit", fused, "--track", "au", "--frames", manifest, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "filled 2 frame(s)" in result.stderr and "2 video(s), 5 frame lines" in result.stdout
    ok = run_cli("validate-submission", out / "submission.zip", "--track", "au", "--frames", manifest)
    assert ok.returncode == 0 and "valid au submission for ABAW 2025" in ok.stdout
    wrong = run_cli("validate-submission", out, "--track", "va", "--frames", manifest)
    assert wrong.returncode == 2 and "v1.txt: wrong header: expected 'valence,arousal'" in wrong.stdout
    assert "error: " in wrong.stderr and "2 problem(s)" in wrong.stderr


def test_submit_errors_are_one_line(tmp_path):
    fused, manifest = _inputs(tmp_path)
    short = tmp_path / "short.csv"
    short.write_text("video,frames\nv1,3\n")
    cases = [
        (["--frames", short], "manifest misses 1 video(s) of the table, first 'v2'"),
        (["--frames", tmp_path / "none.csv"], "none.csv: frame manifest not found"),
        (["--frames", manifest, "--track", "mtl"], "no multi-task track in edition 2025"),
        (
            ["--frames", manifest, "--edition", "2020"],
            "label set of edition 2025 (8 outputs) does not match edition 2020",
        ),
    ]
    for args, message in cases:
        track = [] if "--track" in args else ["--track", "va"]
        result = run_cli("submit", fused, *track, "--out", tmp_path / "out", *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, (
            args,
            result.stderr,
        )
        assert not (tmp_path / "out").exists()
