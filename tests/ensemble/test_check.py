"""The member check: broken members are flagged with their reason, clean and merely weak ones never."""

import numpy as np
import pytest

from ensemble.align import align
from ensemble.check import (
    best_permutation,
    check_members,
    drop_members,
    kappas,
    lag_gain,
    lag_sums,
    peak_lag,
    raise_if_flagged,
)
from ensemble.errors import AffectEnsError, MemberCheckError
from ensemble.evaluate import score, truths_for
from ensemble.pipeline import fit_fusion
from ensemble.simulate import BAD_MEMBERS, MemberSpec, bad_member, simulate_splits

GRADED = [MemberSpec(0.8 + 0.2 * i, 0.05 * (i - 2)) for i in range(5)]
REASONS = {
    "leaky": ["collapses on test", "far above every other member's", "possibly trained on validation"],
    "shifted": ["test table looks shifted by +1 frame", "frame f agrees best with the others' frame f+1"],
    "swapped": ["test EXPR classes agree better with the others read in another order", "Anger as Disgust"],
    "stale": ["output distribution moves on test", "EXPR class shares"],
}


@pytest.fixture(scope="module")
def splits():
    """Five members of graded quality on 12 videos x 300 frames, validation and test."""
    return simulate_splits(12, 300, GRADED, seed=3)


def _with(splits, kind):
    fit_labels, fit_tables, apply_labels, apply_tables = splits
    fit, apply = bad_member(kind, fit_labels, apply_labels, seed=7)
    val, test = align(fit_tables + [fit]), align(apply_tables + [apply])
    return val, test, truths_for(val.keys, fit_labels, val.edition)


@pytest.mark.parametrize("kind", BAD_MEMBERS)
def test_each_bad_member_is_flagged_with_its_reason_and_no_other_member(splits, kind):
    val, test, truths = _with(splits, kind)
    reports = {r.name: r for r in check_members(val, test, truths)}
    assert [name for name, r in reports.items() if r.flags] == ([] if kind == "noise" else [kind])
    text = " ".join(reports[kind].flags)
    for words in REASONS.get(kind, []):
        assert words in text, text
    if kind == "noise":  # useless on both splits, and legitimately so: tuned weights already ignore it
        assert reports["noise"].scores["va"] < 0.2 and abs(reports["noise"].fit.agreement["va"]) < 0.1


def test_no_flag_on_20_clean_ensembles_of_different_seeds_and_sizes():
    """The false-alarm rate of the limits (benchmarks/bench_check.py measures it on many more)."""
    flagged = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        specs = [
            MemberSpec(float(rng.uniform(0.3, 2.0)), float(rng.uniform(-0.2, 0.2)), float(rng.choice([0, 0, 2, 5])))
            for _ in range(int(rng.integers(3, 8)))
        ]
        fit_labels, fit_tables, _, apply_tables = simulate_splits(
            int(rng.integers(8, 31)), 150 * int(rng.integers(1, 3)), specs, seed=100 + seed
        )
        val, test = align(fit_tables), align(apply_tables)
        reports = check_members(val, test, truths_for(val.keys, fit_labels, val.edition))
        flagged += [(seed, r.name, r.flags) for r in reports if r.flags]
    assert flagged == [], f"false alarms: {flagged}"


def _test_scores(splits, stack, fusion):
    _, _, apply_labels, _ = splits
    truths = truths_for(stack.keys, apply_labels, stack.edition)
    out = fusion.apply(stack)
    return {t: score(t, stack.edition, truths[t], out[:, s])["score"] for t, s in stack.slices.items()}


@pytest.mark.parametrize("kind", ["leaky", "shifted", "swapped"])
def test_dropping_the_flagged_member_gives_the_clean_fusion(splits, kind):
    fit_labels, fit_tables, _, apply_tables = splits
    val, test, truths = _with(splits, kind)
    with pytest.raises(MemberCheckError, match=f"member '{kind}'.*--drop-member {kind}.*--accept {kind}"):
        raise_if_flagged(check_members(val, test, truths))
    raise_if_flagged(check_members(val, test, truths), accept=[kind])  # the user vouches for it: no error
    params = {"tune": True}
    dropped_val, dropped_test = drop_members(val, [kind]), drop_members(test, [kind])
    dropped = _test_scores(splits, dropped_test, fit_fusion(dropped_val, truths, "average", params, folds=3))
    clean_val, clean_test = align(fit_tables), align(apply_tables)
    clean_truths = truths_for(clean_val.keys, fit_labels, clean_val.edition)
    clean = _test_scores(splits, clean_test, fit_fusion(clean_val, clean_truths, "average", params, folds=3))
    for task in clean:
        assert abs(dropped[task] - clean[task]) <= 0.01, task
    if kind == "leaky":  # kept, it takes the fusion down: what the check is for
        kept = _test_scores(splits, test, fit_fusion(val, truths, "average", params, folds=3))
        assert kept["va"] < clean["va"] - 0.3 and kept["expr"] < clean["expr"] - 0.2


def test_drop_members_names_the_members_on_a_typo(splits):
    val, _, _ = _with(splits, "noise")
    assert drop_members(val, ["noise", "m0"]).members == ["m1", "m2", "m3", "m4"]
    with pytest.raises(
        AffectEnsError, match="--drop-member 'nosie': no such member; members: m0, m1, m2, m3, m4, noise"
    ):
        drop_members(val, ["nosie"])
    with pytest.raises(AffectEnsError, match="leaves no member"):
        drop_members(val, val.members)


def test_the_check_needs_the_same_members_on_both_splits(splits):
    val, test, _ = _with(splits, "noise")
    with pytest.raises(AffectEnsError, match="different members"):
        check_members(val, drop_members(test, ["noise"]))


def test_kappa_by_hand():
    # 10 frames: both say 0 on 4, both 1 on 4, disagree on 2: p_o = 0.8, p_e = 0.5 * 0.5 * 2 = 0.5 -> 0.6
    counts = np.array([[4, 1], [1, 4]])
    assert kappas(counts) == pytest.approx(0.6)
    assert kappas(np.array([[5, 0], [0, 0]])) == 0.0  # one class only: chance explains everything


def test_best_permutation_finds_a_swap_and_nothing_in_noise():
    rng = np.random.default_rng(0)
    codes = np.repeat(np.arange(20), 100)
    reference = rng.integers(0, 4, 2000)
    member = np.where(rng.random(2000) < 0.7, reference, rng.integers(0, 4, 2000))
    swapped = np.choose(member, [1, 0, 2, 3])
    perm, gain, z, as_given = best_permutation(swapped, reference, codes, 4)
    assert perm == [1, 0, 2, 3] and gain > 0.3 and z > 5 and as_given < 0.4
    perm, gain, z, as_given = best_permutation(rng.integers(0, 4, 2000), reference, codes, 4)
    assert gain < 0.03 and z < 4 and abs(as_given) < 0.05


def test_lag_of_a_shifted_copy_is_found_with_its_sign():
    rng = np.random.default_rng(1)
    codes = np.repeat(np.arange(10), 200)
    signal = np.concatenate([np.repeat(rng.normal(size=20), 10) for _ in range(10)])[:, None]
    noisy = signal + 0.5 * rng.normal(size=signal.shape)
    ahead = np.concatenate(
        [np.r_[noisy[v * 200 + 2 : (v + 1) * 200], noisy[[(v + 1) * 200 - 1] * 2]] for v in range(10)]
    )
    sums, counts = lag_sums(ahead, signal, codes, 5)  # ahead[t] holds frame t + 2
    assert peak_lag(sums, counts, 0, 5.0) == 2
    gain, z = lag_gain(sums, counts, 2, 0)
    assert gain > 0 and z > 5
    sums, counts = lag_sums(noisy, signal, codes, 5)
    assert peak_lag(sums, counts, 0, 5.0) == 0


def test_with_two_members_both_are_flagged_and_the_check_says_it_cannot_tell(splits):
    val, test, truths = _with(splits, "leaky")
    pair_val, pair_test = drop_members(val, ["m1", "m2", "m3", "m4"]), drop_members(test, ["m1", "m2", "m3", "m4"])
    reports = check_members(pair_val, pair_test, truths)
    assert [r.tags[0] for r in reports] == ["collapse", "collapse"]
    assert all("cannot tell which of them changed" in r.flags[-1] for r in reports)
    assert "leak" in reports[1].tags and "leak" not in reports[0].tags  # the score gap names the leaky one
    alone = check_members(drop_members(val, val.members[1:]), drop_members(test, test.members[1:]), truths)
    assert alone[0].flags == []
