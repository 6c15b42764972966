"""The fuser contract: a fusion method is one file; its declared parameters reach the command line; a fuser
is fitted before it predicts; saved fusions keep their format."""

import json

import numpy as np
import pytest
import typer
from helpers import run_here, simulated_stack, write_simulated_dataset

from ensemble.cli import app
from ensemble.cli.options import SHARED, method_options, option_type
from ensemble.contract import read_table
from ensemble.errors import AffectEnsError, NotFittedError
from ensemble.fusion import FUSERS, create_fuser
from ensemble.fusion.base import Fuser, param, param_fields
from ensemble.pipeline import FittedFusion, fit_fusion

FAST = {"stack": {"rounds": 30, "folds": 3}}


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    _, paths = write_simulated_dataset(root, videos=4, frames=40)
    return root, paths


@pytest.fixture(scope="module")
def sim():
    return simulated_stack(videos=4, frames=60)


@pytest.fixture
def scratch_registry(monkeypatch):
    """FUSERS as it is, for one test: what the test registers leaves with it."""
    monkeypatch.setattr(FUSERS, "_entries", dict(FUSERS._entries))


def test_a_fuser_written_in_one_file_is_fitted_and_applied_through_fuse(sim_root, tmp_path, scratch_registry):
    @FUSERS.register("toy-pick")
    class PickOne(Fuser):
        """Returns one member's outputs."""

        name = "toy-pick"
        pick: int = param(0, "toy-pick: the member whose outputs are returned.")

        def predict_task(self, task, aligned):
            return aligned.task_values(task)[self.pick]

    root, paths = sim_root
    out, saved, again = tmp_path / "fused.parquet", tmp_path / "toy.json", tmp_path / "again.parquet"
    assert "--pick" in run_here("fuse", "--help").stdout
    args = ["--labels", root, "--out", out, "--save-fusion", saved, "--folds", 2, "--no-smooth", "--no-thresholds"]
    result = run_here("fuse", *paths, "--method", "toy-pick", "--pick", 2, *args)
    assert result.returncode == 0, result.stderr
    assert "toy-pick (out-of-fold)" in result.stdout
    fused, member = read_table(out), read_table(paths[2])
    cols = [c for c in member.data.columns if c not in ("video", "frame")]
    np.testing.assert_allclose(fused.data[cols].to_numpy(), member.data[cols].to_numpy(), atol=1e-6)
    assert json.loads(saved.read_text())["fuser"]["params"] == {"weights": None, "pick": 2}
    result = run_here("fuse", *paths, "--load-fusion", saved, "--out", again)
    assert result.returncode == 0, result.stderr
    assert read_table(again).data.equals(fused.data)


def test_an_option_of_another_method_is_refused(sim_root, tmp_path):
    root, paths = sim_root
    result = run_here(
        "fuse", *paths, "--method", "average", "--tie-break", "lead", "--labels", root, "--out", tmp_path / "o.parquet"
    )
    assert result.returncode == 2
    assert "--tie-break is not an option of method average (its options: --weights, --tune-weights, --rounds)" in (
        result.stderr
    )
    assert not (tmp_path / "o.parquet").exists()


def test_every_declared_fuser_parameter_has_a_fuse_option():
    """Guard: a parameter a fuser declares can always be set from ``affect-ens fuse``."""
    import typing

    command = typer.main.get_command(app).commands["fuse"]
    flags = {opt for p in command.params for opt in p.opts}
    options = method_options()
    for method in FUSERS.names():
        cls = FUSERS.get(method)
        for f in param_fields(cls):
            assert f.metadata["help"], f"{method}.{f.name} has no help text"
            if f.name in SHARED:
                assert "--" + f.name in flags
                continue
            assert f.name in options, f"{method}.{f.name} cannot be set from the command line"
            assert option_type(typing.get_type_hints(cls)[f.name]) == (options[f.name].kind, options[f.name].is_list)
            assert options[f.name].flag in flags


OUT_OF_RANGE = [("stack", "context", -1), ("stack", "context", 101), ("stack", "max_frames", 0), ("stack", "rounds", 0)]
OUT_OF_RANGE += [("stack", "num_leaves", 1), ("average", "rounds", 0)]
"""(``folds`` is ``fuse``'s own option, for every method's out-of-fold scores: click checks it, see test_robustness.)"""


@pytest.mark.parametrize("method, name, value", OUT_OF_RANGE)
def test_an_out_of_range_parameter_fails_alike_in_python_and_through_fuse(sim_root, tmp_path, method, name, value):
    """Issue 24: one parameter system. A fuser's limits are declared with its parameter (shown in ``fuse --help``)
    and checked by the fuser itself, so Python, ``fuse`` and a saved fusion say the same line; ``fuse`` says it
    before an existing output is looked at."""
    cls = FUSERS.get(method)
    with pytest.raises(AffectEnsError) as python:
        cls(**{name: value})
    assert str(python.value).startswith(f"{method}: {name} must be a finite number at least")
    assert {f.name: f for f in param_fields(cls)}[name].metadata["limits"]  # declared, not hand-written
    root, paths = sim_root
    out = tmp_path / "fused.parquet"
    out.write_bytes(b"a table of the user's")
    flag = "--" + name.replace("_", "-")
    result = run_here("fuse", *paths, "--method", method, flag, value, "--labels", root, "--out", out)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [f"error: {python.value}"]
    assert out.read_bytes() == b"a table of the user's"


def test_fuse_help_explains_every_method_option_with_its_limits():
    text = " ".join(run_here("fuse", "--help").stdout.replace("│", " ").split())
    assert "stack: half-width of temporal context features (0: none) (default 0, at least 0, at most 100)." in text
    assert "average: greedy selection rounds when tuning (default 25, at least 1)." in text


def test_a_parameter_no_option_can_carry_is_caught_by_the_guard(scratch_registry):
    @FUSERS.register("toy-table")
    class Tabled(Fuser):
        name = "toy-table"
        table: dict[str, int] | None = param(None, "toy-table: a mapping no option can carry.")

    assert option_type(dict[str, int]) is None and option_type(list[float] | None) == (float, True)
    assert "table" not in method_options()  # so the guard test above fails while such a fuser is registered


@pytest.mark.parametrize("method", FUSERS.names())
def test_predict_before_fit_is_a_one_line_error(sim, method):
    stack, _, _ = sim
    fuser = create_fuser(method, **FAST.get(method, {}))
    with pytest.raises(NotFittedError, match=f"^{method}: this fuser is not fitted; fit it on validation"):
        fuser.predict(stack)
    with pytest.raises(NotFittedError):
        FittedFusion(fuser).apply(stack)
    assert "members_" not in vars(fuser) and "oof_" not in vars(fuser)


# what `fuse --save-fusion` wrote before the fuser contract: the same names must keep loading
SAVED_NAMES = {
    "average": ({"weights", "tune", "rounds"}, {"members_", "weights_"}),
    "vote": ({"weights", "tie_break", "lead"}, {"members_", "lead_by_task_"}),
    "stack": (
        {"weights", "context", "folds", "max_frames", "rounds", "learning_rate", "num_leaves", "seed"},
        {"members_", "models_"},
    ),
}


@pytest.mark.parametrize("method", FUSERS.names())
def test_saved_fusions_keep_their_format(sim, tmp_path, method):
    stack, truths, _ = sim
    fusion = fit_fusion(stack, truths, method, FAST.get(method, {}), folds=2)
    if method == "stack":
        assert fusion.fuser.oof_ is not None  # the stacker's own out-of-fold outputs served the scores
    doc = json.loads(fusion.save(tmp_path / "f.json").read_text())
    assert doc["generator"] == "affect-ens"
    params, learned = SAVED_NAMES[method]
    assert set(doc["fuser"]["params"]) == params and set(doc["fuser"]["learned"]) == learned  # oof_ is not saved
    loaded = FittedFusion.load(tmp_path / "f.json")
    np.testing.assert_allclose(loaded.apply(stack), fusion.apply(stack), atol=1e-6)


@pytest.mark.parametrize("where", ["params", "learned"])
def test_a_saved_fusion_sets_only_declared_names(sim, tmp_path, where):
    stack, truths, _ = sim
    doc = json.loads(fit_fusion(stack, truths, "average", folds=2).save(tmp_path / "f.json").read_text())
    doc["fuser"][where]["predict"] = "not a parameter"
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(AffectEnsError, match="bad.json: average: unknown parameter or learned attribute 'predict'"):
        FittedFusion.load(tmp_path / "bad.json")


def test_create_fuser_names_the_parameters_of_the_method():
    with pytest.raises(
        AffectEnsError, match="vote: unknown parameter 'tune'; its parameters: weights, tie_break, lead"
    ):
        create_fuser("vote", tune=True)
