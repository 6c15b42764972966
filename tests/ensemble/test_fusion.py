"""Common tests over every registered fuser, hand-computed ties, and fusion quality on simulated members."""

import numpy as np
import pytest
from helpers import simulated_stack

from ensemble.align import align
from ensemble.contract import validate_table
from ensemble.errors import AffectEnsError
from ensemble.evaluate import score, video_folds
from ensemble.fusion import FUSERS, create_fuser, vote_classes, vote_units, weighted_median
from ensemble.metrics import decide
from ensemble.pipeline import fit_fusion, fused_table

FAST = {"stack": {"rounds": 60, "folds": 3}}
EXACT = {"vote", "average"}  # fusers that return a lone member's decisions exactly
LEARNED = {"stack"}  # fusers that learn a mapping: decisions agree closely but not exactly


def test_every_registered_fuser_is_covered_by_the_common_tests():
    assert set(FUSERS.names()) == EXACT | LEARNED


@pytest.fixture(scope="module")
def sim():
    return simulated_stack(videos=6, frames=100)


def _decisions(stack, outputs):
    return {task: decide(task, outputs[:, s]) for task, s in stack.slices.items()}


@pytest.mark.parametrize("method", FUSERS.names())
def test_identical_members_give_back_the_member(method):
    from ensemble.simulate import MemberSpec

    stack, truths, tables = simulated_stack(videos=6, frames=100, specs=[MemberSpec(0.3)], seed=4)
    same = align([tables[0], tables[0], tables[0]])
    out = create_fuser(method, **FAST.get(method, {})).fit(same, truths).predict(same)
    got, want = _decisions(same, out), _decisions(same, same.values[0])
    if method in EXACT:
        for task in same.tasks:
            np.testing.assert_allclose(got[task], want[task], atol=1e-6)
    else:
        assert np.mean(got["expr"] == want["expr"]) > 0.85
        assert np.mean(got["au"] == want["au"]) > 0.85
        assert np.corrcoef(got["va"][:, 0], want["va"][:, 0])[0, 1] > 0.9


@pytest.mark.parametrize("method", FUSERS.names())
def test_output_follows_the_contract(sim, method):
    stack, truths, _ = sim
    fusion = fit_fusion(stack, truths, method, FAST.get(method, {}), folds=3)
    table = fused_table(stack, fusion.apply(stack), fusion, "val")
    checked = validate_table(table.data, table.meta, "fused")
    assert checked.data.shape == (len(stack.keys), 2 + len(stack.columns))
    assert [r["name"] for r in fusion.scores][:3] == stack.members


@pytest.mark.parametrize("method", FUSERS.names())
def test_member_order_does_not_matter_with_uniform_weights(sim, method):
    stack, truths, tables = sim
    fwd = align(tables)
    rev = align(tables[::-1])
    a = create_fuser(method, **FAST.get(method, {})).fit(fwd, truths).predict(fwd)
    b = create_fuser(method, **FAST.get(method, {})).fit(rev, truths).predict(rev)
    if method in EXACT:
        np.testing.assert_allclose(a, b, atol=1e-5)
    else:  # trees may split on a permuted feature first; scores stay within a hair
        for task in fwd.tasks:
            sa = score(task, fwd.edition, truths[task], _slice(fwd, a, task))["score"]
            sb = score(task, fwd.edition, truths[task], _slice(fwd, b, task))["score"]
            assert abs(sa - sb) < 0.03


def _slice(stack, outputs, task):
    return outputs[:, stack.slices[task]]


@pytest.mark.parametrize("method", FUSERS.names())
def test_wrong_weights_count_is_a_clear_error(sim, method):
    stack, truths, _ = sim
    expected = "2 weight.s. given for 3 member.s. .m0, m1, m2." if method in EXACT else "--weights does not apply"
    with pytest.raises(AffectEnsError, match=expected):
        create_fuser(method, weights=[1.0, 2.0]).fit(stack, truths)


def test_vote_tie_breaks_by_hand():
    # 4 members, 3 classes, one frame: members vote 0, 0, 1, 1 -> classes 0 and 1 tie.
    probs = np.array([[[0.6, 0.3, 0.1]], [[0.5, 0.1, 0.4]], [[0.2, 0.7, 0.1]], [[0.1, 0.8, 0.1]]])
    w = np.full(4, 0.25)
    assert vote_classes(probs, w, "lead", lead=0) == [0]
    assert vote_classes(probs, w, "lead", lead=3) == [1]
    # soft: summed probabilities of the tied classes: class 0 = 1.4, class 1 = 1.9
    assert vote_classes(probs, w, "soft") == [1]
    # the lead's class not among the tied ones: it picks by its probabilities among the tied classes
    # (votes 0, 0, 1, 1 and the lead votes 2: among the tied 0 and 1 the lead prefers 0, 0.30 > 0.25)
    lead_out = np.array([[[0.3, 0.25, 0.45]]])
    assert vote_classes(np.concatenate([probs, lead_out]), np.full(5, 0.2), "lead", lead=4) == [0]
    # weights break the symmetry before any tie-break is needed
    assert vote_classes(probs, np.array([0.4, 0.3, 0.15, 0.15]), "soft") == [0]


def test_vote_units_tie_breaks_by_hand():
    probs = np.array([[[0.9, 0.2]], [[0.3, 0.45]]])  # unit 1: yes/no tie; unit 2: both no
    w = np.array([0.5, 0.5])
    assert vote_units(probs, w, "lead", lead=0).tolist() == [[1, 0]]
    assert vote_units(probs, w, "lead", lead=1).tolist() == [[0, 0]]
    assert vote_units(probs, w, "soft").tolist() == [[1, 0]]  # mean 0.6 >= 0.5


def test_vote_best_tie_break_follows_the_best_member(sim):
    stack, truths, _ = sim
    fuser = create_fuser("vote", tie_break="best").fit(stack, truths)
    scores = [score("expr", stack.edition, truths["expr"], stack.task_values("expr")[m])["score"] for m in range(3)]
    assert fuser.lead_by_task_["expr"] == int(np.argmax(scores))
    with pytest.raises(AffectEnsError, match="tie-break 'lead' needs --lead, one of: m0, m1, m2"):
        create_fuser("vote", tie_break="lead", lead="nobody").fit(stack, truths)
    with pytest.raises(AffectEnsError, match="unknown tie-break 'coin'; choose one of: lead, soft, best"):
        create_fuser("vote", tie_break="coin")


def test_weighted_median_by_hand():
    values = np.array([[[0.1]], [[0.5]], [[0.9]]])
    assert weighted_median(values, np.full(3, 1 / 3))[0, 0] == 0.5
    assert weighted_median(values, np.array([0.6, 0.2, 0.2]))[0, 0] == 0.1


def test_video_folds_never_split_a_video():
    codes = np.repeat(np.arange(7), np.random.default_rng(0).integers(5, 30, 7))
    folds = video_folds(codes, 5)
    assert len(folds) == 5
    for train, held in folds:
        assert not set(codes[train]) & set(codes[held])
    assert sorted(np.concatenate([h for _, h in folds]).tolist()) == list(range(len(codes)))


def test_stacker_folds_never_split_a_video(sim, monkeypatch):
    import ensemble.evaluate as evaluate_module  # the stacker imports video_folds from it when it fits

    seen = []

    def spy(codes, n_folds):
        folds = video_folds(codes, n_folds)
        seen.append((codes, folds))
        return folds

    monkeypatch.setattr(evaluate_module, "video_folds", spy)
    stack, truths, _ = sim
    create_fuser("stack", **FAST["stack"]).fit(stack, truths)
    assert len(seen) == 1 + 2 + 12  # one fold split per model: EXPR, each VA dimension, each AU
    for codes, folds in seen:
        for train, held in folds:
            assert not set(codes[train]) & set(codes[held])


def test_fitted_fusion_saves_and_reapplies(sim, tmp_path):
    from ensemble.pipeline import FittedFusion

    stack, truths, _ = sim
    for method in FUSERS.names():
        fusion = fit_fusion(
            stack,
            truths,
            method,
            {"tune": True} if method == "average" else FAST.get(method, {}),
            smooth=True,
            thresholds=True,
            folds=3,
        )
        loaded = FittedFusion.load(fusion.save(tmp_path / f"{method}.json"))
        np.testing.assert_allclose(loaded.apply(stack), fusion.apply(stack), atol=1e-6)


@pytest.fixture(scope="module")
def uneven():
    """Members of unequal quality with VA biases: tuning has something to find."""
    from ensemble.simulate import MemberSpec

    specs = [MemberSpec(0.8, 0.15), MemberSpec(1.0, -0.2), MemberSpec(1.4, 0.05), MemberSpec(2.0, 0.0)]
    return simulated_stack(videos=16, frames=300, specs=specs, seed=2)  # stacking needs every class in several videos


def _best_member(scores, task):
    return max(r[f"{task}_score"] for r in scores[:4])


@pytest.mark.parametrize("method, params", [("average", {"tune": True}), ("stack", {"rounds": 150})])
def test_tuned_fusions_beat_the_best_member_out_of_fold(uneven, method, params):
    stack, truths, _ = uneven
    scores = fit_fusion(stack, truths, method, params, folds=5).scores
    fused = scores[-1]
    assert fused["name"] == f"{method} (out-of-fold)"
    for task in stack.tasks:
        assert fused[f"{task}_score"] > _best_member(scores, task) + 0.01, task


def test_smoothing_raises_ccc_when_noise_is_temporally_independent(uneven):
    stack, truths, _ = uneven
    scores = fit_fusion(stack, truths, "average", {}, smooth=True, folds=5).scores
    plain, smoothed = scores[-2], scores[-1]
    assert smoothed["va_score"] > plain["va_score"] + 0.02
    assert smoothed["expr_score"] > plain["expr_score"]


def test_median_smoothing_keeps_expression_rows_summing_to_one():
    """Classes changing at every frame: each class's median over the window is 0, the row is kept unsmoothed."""
    from ensemble.postprocess import PostProcess

    one_hot = np.eye(8)[[0, 1, 2, 3, 4, 0, 0, 0]]  # vote shares hold exact zeros
    post = PostProcess(windows_={"expr": [("median", 1)]})
    out = post.apply("expr", one_hot, np.zeros(8, dtype=int))
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_array_equal(out[1:4], one_hot[1:4])  # the emptied rows
    assert out[6].argmax() == 0


def test_smoothing_windows_never_cross_a_video():
    from ensemble.postprocess import smooth_within_videos

    values = np.concatenate([np.zeros(10), np.ones(10)])[:, None]
    codes = np.repeat([0, 1], 10)
    for kind in ("mean", "median", "gaussian"):
        out = smooth_within_videos(values, codes, kind, 5)
        np.testing.assert_array_equal(out[:, 0], values[:, 0])  # constant within each video stays constant


def test_thresholds_are_tuned_per_unit_and_moved_to_half():
    from ensemble.postprocess import move_threshold_to_half, tune_thresholds
    from ensemble.tasks import get_edition

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, (2000, 2))
    probs = np.column_stack(
        [0.3 * truth[:, 0] + rng.uniform(0, 0.25, 2000), 0.5 * truth[:, 1] + rng.uniform(0.3, 0.5, 2000)]
    )
    t = tune_thresholds(probs, truth, get_edition(2025))
    assert 0.25 <= t[0] <= 0.3 and 0.5 <= t[1] <= 0.8
    moved = move_threshold_to_half(probs, t)
    np.testing.assert_array_equal(moved >= 0.5, probs >= t)
