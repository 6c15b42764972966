"""``affect-ens submit`` and ``validate-submission`` as a user runs them, with the organisers' files."""

import random

import pandas as pd
import pytest
from helpers import one_hot_table, run_here

from ensemble.contract import write_table
from ensemble.tasks import get_edition
from members.synthetic.dataset import organiser_files


@pytest.fixture(scope="module")
def fused(tiny_dataset, tmp_path_factory):
    root, summary = tiny_dataset
    path = tmp_path_factory.mktemp("fused") / "fused.parquet"
    write_table(one_hot_table(root, summary), path)
    return root, path


def _errors(result):
    return [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]


def test_submit_through_the_organisers_files_then_validate(fused, tmp_path):
    root, table = fused
    frames, videos = organiser_files(root, get_edition("abaw10"))["va"]
    out = tmp_path / "sub"
    result = run_here("submit", table, "--track", "va", "--frames", frames, "--videos", videos, "--out", out)
    assert result.returncode == 0, result.stderr
    rows = frames.read_text().count("\n") - 1
    assert "edition ABAW10 (CVPR 2026) (from the tables' metadata)" in result.stderr
    assert f"frames: {frames}: example file, 2 video(s), {rows} frame(s)" in result.stderr
    assert "frame(s) without predictions (--fill previous)" in result.stderr
    assert f"wrote 1 file(s), {rows} rows (single-file layout, va track, edition ABAW10 (CVPR 2026))" in result.stdout
    lines = (out / "predictions" / "predictions.txt").read_text().splitlines()
    assert lines[0] == "image_location,valence,arousal" and len(lines) == rows + 1
    assert [ln.split(",")[0] for ln in lines[1:]] == [ln.split(",")[0] for ln in frames.read_text().splitlines()[1:]]
    assert list(dict.fromkeys(ln.split("/")[0] for ln in lines[1:])) == videos.read_text().split()
    ok = run_here("validate-submission", out / "submission.zip", "--track", "va", "--frames", frames, "--videos", videos)
    assert ok.returncode == 0 and f"valid va submission for ABAW10 (CVPR 2026) (1 file(s), {rows} rows)" in ok.stdout
    again = run_here("submit", table, "--track", "va", "--frames", frames, "--videos", videos, "--out", out)
    assert again.returncode == 2 and _errors(again) == [f"error: {out}: output exists; pass --force to overwrite it"]


def test_validate_lists_problems_on_stdout_and_fails_in_one_line(fused, tmp_path):
    root, _ = fused
    frames, videos = organiser_files(root, get_edition("abaw10"))["expr"]
    image = frames.read_text().splitlines()[1].split(",")[0]
    broken = tmp_path / "predictions.txt"
    broken.write_text("\ufeff" + frames.read_text().replace(f"{image},\n", f"{image},3.0\n").replace(",\n", ",0\n"))
    result = run_here("validate-submission", broken, "--track", "expr", "--frames", frames, "--videos", videos)
    assert result.returncode == 2 and _errors(result) == [f"error: {broken}: 2 problem(s)"]
    assert "- predictions.txt: starts with a UTF-8 byte-order mark" in result.stdout
    assert (
        "- predictions.txt: integers written as decimals (like '3.0'; write '3'): 1 line(s), first line"
        in result.stdout
    )


def test_mtl_is_refused_where_it_did_not_run(fused, tmp_path):
    _, table = fused
    result = run_here("submit", table, "--track", "mtl", "--edition", "2023", "--frames", table, "--out", tmp_path / "o")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = _errors(result)
    assert (
        "no mtl track in edition ABAW5 (CVPR 2023); it ran in: ABAW3 (CVPR 2022), ABAW4 (ECCV 2022), ABAW7 (ECCV 2024)"
        in line
    )
    assert not (tmp_path / "o").exists()


def test_mtl_2024_rows_follow_a_shuffled_image_list(fused, tmp_path):
    root, table = fused
    images = [f"{v}/{f:05d}.jpg" for v, n in pd.read_csv(root / "test_frames.csv").values for f in range(1, n + 1, 2)]
    random.Random(4).shuffle(images)
    (tmp_path / "MTL_Challenge_test_set_release.txt").write_text("image\n" + "\n".join(images) + "\n")
    out = tmp_path / "mtl"
    args = ["--track", "mtl", "--edition", "abaw7", "--frames", tmp_path / "MTL_Challenge_test_set_release.txt"]
    result = run_here("submit", table, *args, "--out", out)
    assert result.returncode == 0, result.stderr
    assert (
        "edition ABAW7 (ECCV 2024) (given; the tables name ABAW10 (CVPR 2026))" in result.stderr
        and "image list" in result.stderr
    )
    assert [p.name for p in (out / "predictions").iterdir()] == ["predictions.txt"]
    lines = (out / "predictions" / "predictions.txt").read_text().splitlines()
    assert lines[0] == "image,valence,arousal,expression,aus"
    assert [ln.split(",")[0] for ln in lines[1:]] == images
    assert all(len(ln.split(",")) == 16 for ln in lines[1:])


def test_sentinel_fill_for_2021_only(fused, tmp_path):
    root, table = fused
    frames = root / "test_frames.csv"
    out = tmp_path / "va2021"
    result = run_here(
        "submit", table, "--track", "va", "--edition", "2021", "--frames", frames, "--fill", "sentinel", "--out", out
    )
    assert result.returncode == 0, result.stderr
    files = sorted((out / "predictions").iterdir())
    text = "".join(p.read_text() for p in files)
    assert text.count("-5,-5\n") > 0 and all(p.read_text().startswith("valence,arousal\n") for p in files)
    assert f"filled {text.count('-5,-5')} frame(s) without predictions (--fill sentinel)" in result.stderr
    refused = run_here(
        "submit", table, "--track", "va", "--frames", frames, "--fill", "sentinel", "--out", tmp_path / "x"
    )
    assert refused.returncode == 2 and "--fill sentinel is for ABAW2 (ICCV 2021) only" in _errors(refused)[0]


@pytest.mark.parametrize(
    "manifest, message",
    [
        ("video,frames\n../../x,3\n", "video id '../../x' cannot be used as a file name"),
        ("video,frames\n/abs,3\n", "video id '/abs' cannot be used as a file name"),
        ("name,count\nv,3\n", "not a frame source: expected a 'video,frames' manifest"),
    ],
)
def test_submit_errors_are_one_line_and_write_nothing(fused, tmp_path, manifest, message):
    _, table = fused
    (tmp_path / "frames.csv").write_text(manifest)
    result = run_here(
        "submit",
        table,
        "--track",
        "va",
        "--edition",
        "2022",
        "--frames",
        tmp_path / "frames.csv",
        "--out",
        tmp_path / "o",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = _errors(result)
    assert message in line
    assert not (tmp_path / "o").exists() and not (tmp_path / "x").exists()
