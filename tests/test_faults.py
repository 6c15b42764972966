"""Commands killed with SIGKILL at chosen steps, and two commands writing the same output at once.

After a kill each output is whole: the old one intact or the new one complete, never a mix; the next run
cleans up what the killed one left and succeeds. Of two commands started together on one output, exactly
one succeeds and the other says why.
"""

import hashlib
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from faults import Child, run
from helpers import tree_state, write_simulated_dataset

from ensemble.outputs import MARKER


def contents(folder: Path) -> dict:
    """Relative paths and hashes: two folders with equal contents compare equal."""
    return {k[len(str(folder)) :]: v for k, v in tree_state(folder).items()}


def data_args(out, seed):
    return [
        "make-demo-data",
        out,
        "--seed",
        seed,
        "--train-videos",
        1,
        "--val-videos",
        1,
        "--test-videos",
        1,
        "--min-frames",
        12,
        "--max-frames",
        12,
        "--size",
        24,
    ]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """The folder a re-run replaces (seed 1) and what an uninterrupted re-run makes (seed 2)."""
    base = tmp_path_factory.mktemp("faults")
    for seed in (1, 2):
        assert run(*data_args(base / f"seed{seed}", seed)).returncode == 0
    return contents(base / "seed1"), contents(base / "seed2"), base


@pytest.mark.parametrize("point", [("open", 1), ("open", 7), ("exchange", 1), ("after-exchange", 1), ("unlink", 3)])
def test_killed_force_replace_of_a_folder_leaves_old_or_new_whole(datasets, tmp_path, point):
    old, new, base = datasets
    out = tmp_path / "data"
    assert run(*data_args(out, 1)).returncode == 0
    killed = run(*data_args(out, 2), "--force", kill=point)
    assert killed.returncode == -9, killed.stderr
    assert contents(out) in (old, new)
    again = run(*data_args(out, 2), "--force")
    assert again.returncode == 0, again.stderr
    assert contents(out) == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary, old copy or lock left


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    _, paths = write_simulated_dataset(root, videos=4, frames=40)
    pd.DataFrame({"video": [f"v{i:04d}" for i in range(4)], "frames": 40}).to_csv(root / "frames.csv", index=False)
    return root, paths


def fuse_args(sim, out, *extra):
    return ["fuse", *sim[1], "--labels", sim[0], "--out", out, "--no-smooth", "--no-thresholds", *extra]


@pytest.mark.parametrize("point", [("open", 1), ("replace", 1), ("replace", 2)])
def test_killed_fuse_leaves_each_output_old_or_new(sim, tmp_path, point):
    table, fusion = tmp_path / "fused.parquet", tmp_path / "fusion.json"
    assert run(*fuse_args(sim, table, "--save-fusion", fusion, "--method", "vote")).returncode == 0
    old = (table.read_bytes(), fusion.read_bytes())
    assert run(*fuse_args(sim, tmp_path / "ref.parquet", "--save-fusion", tmp_path / "ref.json")).returncode == 0
    new = ((tmp_path / "ref.parquet").read_bytes(), (tmp_path / "ref.json").read_bytes())
    killed = run(*fuse_args(sim, table, "--save-fusion", fusion, "--force"), kill=point)
    assert killed.returncode == -9, killed.stderr
    assert table.read_bytes() in (old[0], new[0]) and fusion.read_bytes() in (old[1], new[1])
    assert run(*fuse_args(sim, table, "--save-fusion", fusion, "--force")).returncode == 0
    assert (table.read_bytes(), fusion.read_bytes()) == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fused.parquet", "fusion.json", "ref.json", "ref.parquet"]


def _race(*commands):
    children = [Child(args) for args in commands]
    return [(c.wait().returncode, c.stderr) for c in children]


def test_two_fuses_to_one_output_exactly_one_succeeds(sim, tmp_path):
    out = tmp_path / "fused.parquet"
    results = _race(fuse_args(sim, out), fuse_args(sim, out))
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "being written by another affect-ens command (pid" in loser or "output exists" in loser
    assert run("evaluate", out, "--labels", sim[0]).returncode == 0  # the winner's table is whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fused.parquet"]


def test_two_dataset_writers_to_one_folder_exactly_one_succeeds(datasets, tmp_path):
    out = tmp_path / "data"
    results = _race(data_args(out, 2), data_args(out, 2))
    assert sorted(code for code, _ in results) == [0, 2], results
    assert contents(out) == datasets[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def submit_args(sim, member: int, out, *extra):
    frames = sim[0] / "frames.csv"
    return ["submit", sim[1][member], "--track", "va", "--edition", "2022", "--frames", frames, "--out", out, *extra]


def submission(folder: Path) -> dict:
    """A submission folder's files and its zip's entries, by content (a zip's own bytes hold its time, and so
    does the marker's digest of it)."""
    files = {k: v for k, v in contents(folder).items() if not k.endswith((".zip", MARKER))}
    for path in folder.rglob("*.zip"):
        with zipfile.ZipFile(path) as z:
            files |= {f"{path.name}:{n}": hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist()}
    return files


@pytest.mark.parametrize("point", [("open", 1), ("open", 4), ("exchange", 1), ("after-exchange", 1), ("unlink", 2)])
def test_killed_submit_force_leaves_the_old_submission_or_the_new_one(sim, tmp_path, point):
    out, ref = tmp_path / "sub", tmp_path / "ref"
    assert run(*submit_args(sim, 0, out)).returncode == 0
    assert run(*submit_args(sim, 1, ref)).returncode == 0
    old, new = submission(out), submission(ref)
    assert old != new
    killed = run(*submit_args(sim, 1, out, "--force"), kill=point)
    assert killed.returncode == -9, killed.stderr
    assert submission(out) in (old, new)
    again = run(*submit_args(sim, 1, out, "--force"))
    assert again.returncode == 0, again.stderr
    assert submission(out) == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref", "sub"]  # no temporary, old copy or lock left


def test_two_submits_to_one_output_exactly_one_succeeds(sim, tmp_path):
    out = tmp_path / "sub"
    results = _race(submit_args(sim, 0, out), submit_args(sim, 1, out))
    assert sorted(code for code, _ in results) == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "being written by another affect-ens command (pid" in loser or "output exists" in loser
    winner = 0 if results[0][0] == 0 else 1
    assert run(*submit_args(sim, winner, tmp_path / "ref")).returncode == 0
    assert submission(out) == submission(tmp_path / "ref")  # whole: the winner's submission, nothing of the other
    assert (
        run(
            "validate-submission",
            out / "submission.zip",
            "--track",
            "va",
            "--edition",
            "2022",
            "--frames",
            sim[0] / "frames.csv",
        ).returncode
        == 0
    )


def _leaf_run(folder: Path) -> Path:
    import dataclasses
    import json

    from members.cnn import CnnConfig

    folder.mkdir()
    cfg = dataclasses.asdict(CnnConfig(backbone="test_resnet", image_size=32, tasks=("expr",)))
    (folder / "config.json").write_text(json.dumps({"generator": "affect-ens", "member": "cnn", **cfg}))
    (folder / "best.pt").write_bytes(b"weights")
    return folder


@pytest.mark.parametrize("point", [("open", 1), ("exchange", 1), ("after-exchange", 1)])
def test_killed_committee_force_leaves_the_old_committee_or_the_new_one(tmp_path, point):
    a, b = _leaf_run(tmp_path / "a"), _leaf_run(tmp_path / "b")
    assert run("committee", a, b, "--out", tmp_path / "ref").returncode == 0
    assert run("committee", b, a, "--lead", b, "--out", tmp_path / "c").returncode == 0
    old = contents(tmp_path / "c")
    assert run("committee", a, b, "--out", tmp_path / "new").returncode == 0
    new = contents(tmp_path / "new")
    killed = run("committee", a, b, "--out", tmp_path / "c", "--force", kill=point)
    assert killed.returncode == -9, killed.stderr
    assert contents(tmp_path / "c") in (old, new)
    assert run("committee", a, b, "--out", tmp_path / "c", "--force").returncode == 0
    assert contents(tmp_path / "c") == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c", "new", "ref"]


@pytest.mark.parametrize("point", [("open", 1), ("replace", 1)])
def test_killed_report_force_leaves_the_old_page_or_the_new_one(sim, tmp_path, point):
    page = tmp_path / "page.html"
    args = ["report", *sim[1], "--labels", sim[0]]
    assert run(*args[:-3], *args[-2:], "--out", page).returncode == 0  # two members: the old page
    old = page.read_bytes()
    assert run(*args, "--out", tmp_path / "ref.html").returncode == 0
    new = (tmp_path / "ref.html").read_bytes()
    assert old != new
    killed = run(*args, "--out", page, "--force", kill=point)
    assert killed.returncode == -9, killed.stderr
    assert page.read_bytes() in (old, new)
    assert run(*args, "--out", page, "--force").returncode == 0
    assert page.read_bytes() == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html", "ref.html"]


def _class_table(path: Path, probs: list[float]) -> Path:
    """A table of an image challenge's two classes (as test_robustness_datasets.py's)."""
    from ensemble.contract import PredictionTable, TableMeta, write_table
    from ensemble.tasks import label_set

    data = pd.DataFrame({"video": ["test/x.jpg", "test/y.jpg"], "frame": 1, "expr_a": probs})
    data["expr_b"] = 1 - data["expr_a"]
    return write_table(PredictionTable(data, TableMeta.of(("expr",), label_set(("a", "b")), member="m")), path)


@pytest.mark.parametrize("point", [("open", 1), ("replace", 1), ("replace", 2)])
def test_killed_class_submission_force_leaves_the_csv_and_its_record_old_or_new(tmp_path, point):
    """submit of an image challenge's table: a CSV and its <name>.csv.json record, moved into place in turn."""
    old_table, new_table = (
        _class_table(tmp_path / "old.parquet", [0.8, 0.3]),
        _class_table(tmp_path / "new.parquet", [0.2, 0.7]),
    )
    out, ref = tmp_path / "s.csv", tmp_path / "ref.csv"
    assert run("submit", old_table, "--out", out).returncode == 0
    assert run("submit", new_table, "--out", ref).returncode == 0
    files = (out, out.with_name("s.csv.json"))
    old, new = [p.read_bytes() for p in files], [ref.read_bytes(), ref.with_name("ref.csv.json").read_bytes()]
    assert old[0] != new[0]
    killed = run("submit", new_table, "--out", out, "--force", kill=point)
    assert killed.returncode == -9, killed.stderr
    assert all(p.read_bytes() in (a, b) for p, a, b in zip(files, old, new))
    assert run("submit", new_table, "--out", out, "--force").returncode == 0
    assert [p.read_bytes() for p in files] == new
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "new.parquet",
        "old.parquet",
        "ref.csv",
        "ref.csv.json",
        "s.csv",
        "s.csv.json",
    ]
