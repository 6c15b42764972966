import numpy as np
import pytest
from sklearn.metrics import accuracy_score as sk_accuracy
from sklearn.metrics import f1_score

from ensemble.metrics import (
    accuracy_score,
    au_f1_score,
    ccc_score,
    macro_f1_score,
    task_metrics,
    task_score,
    va_score,
)
from ensemble.tasks import get_edition


def ccc_textbook(x, y):
    """Lin (1989) written out with explicit sums, independent of the implementation under test."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sx = sum((a - mx) ** 2 for a in x) / n
    sy = sum((b - my) ** 2 for b in y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y)) / n
    return 2 * sxy / (sx + sy + (mx - my) ** 2)


@pytest.mark.parametrize("seed", range(5))
def test_ccc_matches_textbook_formula(seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, 200)
    y = 0.5 * x + rng.normal(0.1, 0.3, 200)
    assert ccc_score(x, y) == pytest.approx(ccc_textbook(list(x), list(y)), abs=1e-12)


def test_ccc_hand_computed_and_edge_cases():
    # x = [1, 2, 3], y = [2, 3, 4]: cov 2/3, var 2/3 each, mean gap 1 -> (4/3) / (4/3 + 1) = 4/7
    assert ccc_score(np.array([1.0, 2, 3]), np.array([2.0, 3, 4])) == pytest.approx(4 / 7)
    assert ccc_score(np.array([1.0, 2, 3]), np.array([1.0, 2, 3])) == pytest.approx(1.0)
    assert ccc_score(np.array([1.0, 2, 3]), np.array([-1.0, -2, -3])) < 0
    assert ccc_score(np.array([0.2, -0.4, 0.9]), np.full(3, 0.3)) == 0.0  # constant prediction
    assert np.isnan(ccc_score(np.full(4, 0.5), np.full(4, 0.5)))  # undefined
    assert np.isnan(ccc_score(np.array([]), np.array([])))


def test_va_score_is_mean_of_two_cccs():
    rng = np.random.default_rng(1)
    t, p = rng.uniform(-1, 1, (100, 2)), rng.uniform(-1, 1, (100, 2))
    assert va_score(t, p) == pytest.approx((ccc_score(t[:, 0], p[:, 0]) + ccc_score(t[:, 1], p[:, 1])) / 2)


@pytest.mark.parametrize("seed", range(5))
def test_macro_f1_and_accuracy_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    t, p = rng.integers(0, 8, 500), rng.integers(0, 6, 500)  # classes 6 and 7 never predicted
    expected = f1_score(t, p, average="macro", labels=list(range(8)), zero_division=0)
    assert macro_f1_score(t, p, 8) == pytest.approx(expected)
    assert accuracy_score(t, p) == pytest.approx(sk_accuracy(t, p))


def test_macro_f1_counts_absent_classes_as_zero():
    t = np.array([0, 0, 1, 1])
    assert macro_f1_score(t, t, 2) == 1.0
    assert macro_f1_score(t, t, 4) == 0.5  # two classes of the label set never seen nor predicted


@pytest.mark.parametrize("seed", range(3))
def test_au_f1_matches_sklearn_per_unit(seed):
    rng = np.random.default_rng(seed)
    t, p = rng.integers(0, 2, (300, 12)), rng.integers(0, 2, (300, 12))
    t[:, 3] = 0  # a unit never active
    expected = np.mean([f1_score(t[:, j], p[:, j], zero_division=0) for j in range(12)])
    assert au_f1_score(t, p) == pytest.approx(expected)


def test_edition_scores_weight_f1_and_accuracy():
    t = np.array([0, 1, 2, 3, 4, 5, 6, 0])
    outputs = np.eye(8)[[0, 1, 2, 3, 4, 5, 0, 0]][:, :7]
    m2020 = task_metrics("expr", get_edition(2020), t, outputs)
    assert m2020["score"] == pytest.approx(0.67 * m2020["f1"] + 0.33 * m2020["accuracy"])
    m2022 = task_metrics("expr", get_edition(2022), t, np.eye(8)[[0, 1, 2, 3, 4, 5, 0, 0]])
    assert m2022["score"] == m2022["f1"]
    au_t, au_o = np.array([[1, 0], [0, 1]] * 4), np.array([[0.9, 0.6], [0.1, 0.2]] * 4)
    au = task_metrics("au", get_edition(2020), au_t, au_o)
    # unit 1 always right, unit 2 always wrong: accuracy 0.5, F1 (1 + 0) / 2
    assert au["accuracy"] == 0.5 and au["f1"] == 0.5 and au["score"] == pytest.approx(0.5)


def test_task_score_thresholds_au_outputs():
    truth = np.array([[1], [0], [1], [0]])
    probs = np.array([[0.4], [0.1], [0.45], [0.3]])
    ed = get_edition(2025)
    assert task_score("au", ed, truth, probs) == 0.0
    assert task_score("au", ed, truth, probs, thresholds=np.array([0.35])) == 1.0


def test_the_multi_task_score_is_reported_where_the_edition_has_the_track():
    from dataclasses import replace

    from helpers import simulated_stack

    from ensemble.pipeline import member_rows
    from ensemble.tasks import get_edition

    stack, truths, _ = simulated_stack(videos=3, frames=40)
    assert "mtl_score" not in member_rows(stack, truths)[0]  # 2025: no multi-task track
    with_mtl = replace(stack, edition=get_edition(2024))  # the same label sets; ABAW7 ran the multi-task track
    row = member_rows(with_mtl, truths)[0]
    assert row["mtl_score"] == pytest.approx(row["va_score"] + row["expr_f1"] + row["au_f1"])
    assert 0 < row["mtl_score"] < 3
