"""``affect-ens fuse`` and ``evaluate`` as a user runs them."""

import json

import pytest
from helpers import run_here, write_simulated_dataset

from ensemble.contract import read_table


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    _, paths = write_simulated_dataset(root)
    return root, paths


def test_evaluate_prints_a_row_per_member(sim_root):
    root, paths = sim_root
    result = run_here("evaluate", *paths, "--labels", root)
    assert result.returncode == 0, result.stderr
    for name in ("m0", "m1", "m2", "EXPR F1", "VA CCC", "AU F1"):
        assert name in result.stdout


@pytest.mark.parametrize("method", ["vote", "average", "stack"])
def test_fuse_fits_reports_and_reapplies(sim_root, tmp_path, method):
    root, paths = sim_root
    out, saved = tmp_path / "fused.parquet", tmp_path / "fusion.json"
    result = run_here(
        "fuse", *paths, "--method", method, "--labels", root, "--out", out, "--save-fusion", saved, "--folds", 3
    )
    assert result.returncode == 0, result.stderr
    assert f"{method} + post (out-of-fold)" in result.stdout
    fused = read_table(out)
    assert fused.meta.extra["members"] == ["m0", "m1", "m2"] and len(fused.data) == 6 * 80
    assert json.loads(saved.read_text())["fuser"]["method"] == method
    again = tmp_path / "again.parquet"
    result = run_here("fuse", *paths, "--load-fusion", saved, "--out", again)
    assert result.returncode == 0, result.stderr
    assert read_table(again).data.equals(fused.data)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "median"], "unknown fusion method 'median'; choose one of: average, stack, vote"),
        (["--method", "average", "--weights", "1,2"], "2 weight(s) given for 3 member(s) (m0, m1, m2)"),
        (["--method", "average", "--weights", "1,x,2"], "--weights must be comma-separated numbers"),
        (
            ["--method", "vote", "--tie-break", "lead", "--lead", "m9"],
            "tie-break 'lead' needs --lead, one of: m0, m1, m2",
        ),
        (["--align", "loose"], "unknown alignment policy 'loose'; choose one of: strict, intersect"),
        (
            ["--edition", "2020"],
            "expr label set of edition ABAW10 (CVPR 2026) (8 outputs) does not match edition ABAW1 (FG 2020) (7 outputs)",
        ),
    ],
)
def test_fuse_errors_are_one_line_and_write_nothing(sim_root, tmp_path, args, message):
    root, paths = sim_root
    out = tmp_path / "fused.parquet"
    result = run_here("fuse", *paths, "--labels", root, "--out", out, *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_fuse_without_labels_or_onto_an_input(sim_root, tmp_path):
    root, paths = sim_root
    result = run_here("fuse", *paths, "--out", tmp_path / "f.parquet")
    assert result.returncode == 2 and "fitting a fusion needs --labels" in result.stderr
    before = paths[0].read_bytes()
    result = run_here("fuse", *paths, "--labels", root, "--out", paths[0], "--force")
    assert result.returncode == 2 and "m0.parquet: is also an input of this command" in result.stderr
    assert paths[0].read_bytes() == before


def test_a_bad_method_option_is_said_before_an_existing_output(sim_root, tmp_path):
    """The user fixes the option first: it is reported before --force is asked for, and nothing is touched."""
    root, paths = sim_root
    out = tmp_path / "fused.parquet"
    out.write_bytes(b"a table of the user's")
    result = run_here("fuse", *paths, "--labels", root, "--out", out, "--method", "vote", "--tune-weights")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --tune-weights is not an option of method vote (its options: --weights, --tie-break, --lead)"
    ]
    assert out.read_bytes() == b"a table of the user's"
