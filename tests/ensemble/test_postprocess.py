"""Post-processing that earns its place, and the fast paths of tuning checked against plain computations."""

import numpy as np
import pandas as pd
import pytest
from helpers import simulated_stack
from scipy.ndimage import gaussian_filter1d, median_filter, uniform_filter1d

from ensemble.align import Aligned
from ensemble.evaluate import Truth, score
from ensemble.fusion.average import au_weights, expr_weights, greedy_ccc_weights
from ensemble.metrics import (
    au_metrics,
    au_unit_scores_from_counts,
    binary_counts,
    ccc_from_sums,
    ccc_score,
    expr_metrics,
    expr_score_from_counts,
    task_score,
)
from ensemble.pipeline import fit_fusion
from ensemble.postprocess import MARGIN, PostProcess, smooth_within_videos, tune_thresholds
from ensemble.tasks import get_edition

ED = get_edition(2025)


def _per_video(values, codes, kind, half):
    """The plain way: scipy's filter on each video on its own."""
    out = np.empty_like(values, dtype=np.float64)
    size = 2 * half + 1
    for code in np.unique(codes):
        rows = codes == code
        x = values[rows].astype(np.float64)
        if kind == "mean":
            out[rows] = uniform_filter1d(x, size=size, axis=0, mode="nearest")
        elif kind == "median":
            out[rows] = median_filter(x, size=(size, 1), mode="nearest")
        else:
            out[rows] = gaussian_filter1d(x, sigma=half / 2.0, axis=0, mode="nearest", truncate=2.0)
    return out


@pytest.mark.parametrize("kind", ["mean", "median", "gaussian"])
def test_smoothing_in_one_pass_equals_smoothing_each_video(kind):
    rng = np.random.default_rng(0)
    lengths = [1, 2, 7, 40, 150]  # videos shorter than the window included
    codes = np.repeat(np.arange(len(lengths)), lengths)
    values = rng.random((len(codes), 3))
    for half in (1, 5, 18):
        np.testing.assert_allclose(
            smooth_within_videos(values, codes, kind, half), _per_video(values, codes, kind, half), atol=1e-12
        )


def test_scores_from_counts_equal_the_reported_scores():
    rng = np.random.default_rng(2)
    for year in (2020, 2025):
        ed = get_edition(year)
        k, units = len(ed.expr_classes), len(ed.aus)
        truth, pred = rng.integers(0, k, 500), rng.integers(0, k, 500)
        tp = np.bincount(truth[truth == pred], minlength=k)
        counts = (tp, np.bincount(pred, minlength=k), np.bincount(truth, minlength=k))
        assert expr_score_from_counts(ed, *counts) == pytest.approx(expr_metrics(ed, truth, pred)["score"])
        truth, pred = rng.integers(0, 2, (500, units)), rng.integers(0, 2, (500, units))
        unit = au_unit_scores_from_counts(ed, *binary_counts(truth, pred), 500)
        assert unit.mean() == pytest.approx(au_metrics(ed, truth, pred)["score"])
    x, y = rng.uniform(-1, 1, 300), rng.uniform(-1, 1, 300)
    sums = [len(x), x.sum(), y.sum(), x @ x, y @ y, x @ y]
    assert ccc_from_sums(np.array(sums)) == pytest.approx(ccc_score(x, y), abs=1e-12)


def _reference_greedy(values, scorer, rounds):
    """Caruana selection written plainly: score the mean of every candidate selection."""
    counts, total = np.zeros(len(values)), np.zeros(values.shape[1:])
    for step in range(1, rounds + 1):
        trials = [scorer((total + values[m]) / step) for m in range(len(values))]
        best = int(np.argmax(trials))
        counts[best] += 1
        total += values[best]
    return counts / counts.sum()


def test_fast_greedy_weights_equal_the_plain_selection():
    from ensemble.simulate import MemberSpec

    specs = [MemberSpec(0.8, 0.15), MemberSpec(1.0, -0.2), MemberSpec(1.4, 0.05), MemberSpec(2.0, 0.0)]
    stack, truths, _ = simulated_stack(videos=4, frames=300, specs=specs, seed=2)
    for task, fast in (("expr", expr_weights), ("au", au_weights)):
        values = stack.task_values(task)[:, truths[task].rows]
        truth = truths[task].values
        plain = _reference_greedy(values.astype(np.float64), lambda out, t=task, y=truth: task_score(t, ED, y, out), 10)
        np.testing.assert_allclose(fast(values, truth, ED, 10), plain)
    values = stack.task_values("va")[:, truths["va"].rows, 0]
    truth = truths["va"].values[:, 0]
    plain = _reference_greedy(values.astype(np.float64), lambda out: ccc_score(truth, out), 10)
    np.testing.assert_allclose(greedy_ccc_weights(values, truth, 10), plain)


def _miscalibrated_units(videos=10, frames=200, units=12, seed=0):
    """AU probabilities whose calibration differs from video to video: thresholds tuned on some videos
    fit those videos and hurt the others."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(videos), frames)
    offsets = rng.permutation(np.linspace(-0.25, 0.25, videos))
    truth = (rng.random((len(codes), units)) < 0.4).astype(int)
    probs = 0.5 + offsets[codes][:, None] + 0.3 * (truth - 0.5) + rng.normal(0, 0.08, truth.shape)
    return codes, np.clip(probs, 0, 1).astype(np.float32), truth


def test_thresholds_that_lower_the_out_of_fold_score_are_dropped_and_said_so():
    codes, probs, truth = _miscalibrated_units()
    keys = pd.DataFrame({"video": [f"v{c}" for c in codes], "frame": np.tile(np.arange(1, 201), 10)})
    cols = ED.output_columns("au")
    stack = Aligned(keys, np.stack([probs, probs]), cols, ["a", "b"], ("au",), ED)
    truths = {"au": Truth(np.arange(len(codes)), truth)}
    fusion = fit_fusion(stack, truths, "average", {}, smooth=False, thresholds=True, folds=5)
    decisions = fusion.post.decisions_
    assert [d["step"] for d in decisions] == ["threshold"] * 12 and not any(d["kept"] for d in decisions)
    assert all(d["out_of_fold_with"] < d["out_of_fold_without"] - MARGIN for d in decisions)  # they hurt
    assert fusion.post.thresholds_ == [0.5] * 12
    plain, post = fusion.scores[-2], fusion.scores[-1]
    assert post["au_score"] == plain["au_score"]  # nothing applied: the claimed score is the plain one
    assert "Dropped (gain under 0.005): AU1 threshold" in post["post"] and "kept nothing" in post["post"]
    np.testing.assert_array_equal(fusion.apply(stack) >= 0.5, probs >= 0.5)


def test_steps_that_help_are_kept_and_their_out_of_fold_score_is_the_reported_one():
    from ensemble.simulate import MemberSpec

    specs = [MemberSpec(0.8, 0.15), MemberSpec(1.0, -0.2), MemberSpec(1.4, 0.05)]
    stack, truths, _ = simulated_stack(videos=10, frames=200, specs=specs, seed=2)
    fusion = fit_fusion(stack, truths, "average", {}, smooth=True, thresholds=True, folds=5)
    kept = {(d["target"], d["step"]): d for d in fusion.post.decisions_ if d["kept"]}
    for target in ("EXPR", "valence", "arousal", "AU"):  # noise independent in time: smoothing helps every task
        assert (target, "smoothing") in kept
    # the decision's out-of-fold score is the reported one, computed from the out-of-fold outputs
    post_row = fusion.scores[-1]
    assert kept[("EXPR", "smoothing")]["out_of_fold_with"] == pytest.approx(post_row["expr_score"], abs=1e-6)
    assert kept[("valence", "smoothing")]["out_of_fold_with"] == pytest.approx(post_row["va_ccc_valence"], abs=1e-6)
    # the out-of-fold outputs kept by the post-processing score as reported
    assert score("va", stack.edition, truths["va"], fusion.post.oof_["va"])["score"] == pytest.approx(
        post_row["va_score"]
    )


def test_in_sample_thresholds_use_a_coarse_grid_and_prefer_the_default():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, (4000, 2))
    # unit 0: any threshold from 0.4 to 0.6 separates perfectly -> 0.5; unit 1: only 0.25..0.3 does -> 0.3
    probs = np.column_stack(
        [0.3 + 0.4 * truth[:, 0] + rng.uniform(-0.05, 0.05, 4000), 0.3 * truth[:, 1] + rng.uniform(0, 0.25, 4000)]
    )
    assert tune_thresholds(probs, truth, ED).tolist() == [0.5, 0.3]


def test_saved_fusion_keeps_its_decisions(tmp_path):
    from ensemble.pipeline import FittedFusion

    stack, truths, _ = simulated_stack(videos=6, frames=100)
    fusion = fit_fusion(stack, truths, "average", {}, smooth=True, thresholds=True, folds=3)
    loaded = FittedFusion.load(fusion.save(tmp_path / "f.json"))
    assert loaded.post.decisions_ == fusion.post.decisions_ and loaded.post.summary() == fusion.post.summary()
    assert PostProcess().summary().startswith("(out-of-fold score without → with each step): kept nothing")
