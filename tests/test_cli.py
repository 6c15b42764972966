"""The command line as a user runs it: a subprocess, its exit code, its one-line errors."""

import subprocess
import sys

import pandas as pd


def run_cli(*args, cwd=None):
    code = "from ensemble.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_make_demo_data_then_refuse_to_overwrite(tmp_path):
    out = tmp_path / "d"
    args = [
        "make-demo-data",
        out,
        "--train-videos",
        1,
        "--val-videos",
        1,
        "--test-videos",
        1,
        "--min-frames",
        12,
        "--max-frames",
        14,
        "--size",
        24,
    ]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "wrote" in first.stdout and (out / "cropped_aligned").is_dir()
    counts = pd.read_csv(out / "test_frames.csv")["frames"].tolist()
    again = run_cli(*args)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1] == f"error: {out}: output exists; pass --force to overwrite it"
    assert "Traceback" not in again.stderr
    assert pd.read_csv(out / "test_frames.csv")["frames"].tolist() == counts
    assert run_cli(*args, "--force", "--seed", 1).returncode == 0


def test_unknown_edition_is_one_line_error(tmp_path):
    result = run_cli("make-demo-data", tmp_path / "x", "--edition", 1999)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        "unknown ABAW edition '1999'; name a competition, abaw1 ... abaw10 (or 1st ... 10th), or a year, 2020 ... 2026"
        in result.stderr
    )
    assert not (tmp_path / "x").exists()


def test_no_help_text_is_eaten_as_rich_markup():
    """Rich reads '[word ...]' in a help text as a markup tag and drops it (this hid every default)."""
    import re

    import typer

    from ensemble.cli import app

    root = typer.main.get_command(app)
    texts = [(f"{name} {p.name}", p.help or "") for name, cmd in root.commands.items() for p in cmd.params] + [
        (name, cmd.help or "") for name, cmd in root.commands.items()
    ]
    assert len(texts) > 50
    eaten = [(where, text) for where, text in texts if re.search(r"\[[a-z/]", text)]
    assert not eaten
    result = run_cli("train-member", "cnn", "--help")
    assert "(default:" in result.stdout
