"""The member check: broken members are flagged with their reason, clean and merely weak ones never."""

import numpy as np
import pandas as pd
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


def test_a_member_is_expected_to_move_by_its_own_sensitivity_to_the_labels():
    """One AU, 100 labelled validation frames with 10 positives; on test the label rate rises from 0.1 to 0.4.
    A sharp member (TPR 1, FPR 0), a nearly sharp one (TPR .9) and a flat one (TPR .4, FPR .1) move by 0.30,
    0.27 and 0.09: each as its sensitivity says (the old rule saw the flat one 0.18 off the others' median
    move). A flat member whose rate falls to 0.02 meanwhile does not behave as it did on validation."""
    from ensemble.check import distribution_shift, sensitivity

    # per member: (decision x label, label, decision) counts on validation
    joint = np.array([[10.0, 10.0, 10.0], [9.0, 10.0, 9.0], [4.0, 10.0, 13.0], [4.0, 10.0, 13.0]])
    sens = sensitivity("au", joint, 100.0)
    assert sens[1][:, 0] == pytest.approx([1.0, 0.9, 0.3, 0.3])
    fit = np.array([[0.10], [0.09], [0.13], [0.13]])
    apply = np.array([[0.40], [0.36], [0.22], [0.02]])
    shift = distribution_shift("au", sens, fit, apply)
    # the sharp member, the most sensitive of the others, estimates a label move of 0.3 / (1 + ridge 0.01): the
    # weighted median (weights TPR - FPR squared) for m2 and m3, who are expected at 0.13 + 0.3 x 0.297
    assert shift[2] == pytest.approx(abs(0.22 - (0.13 + 0.3 * 0.3 / 1.01)), abs=1e-9) and max(shift[:3]) < 0.01
    assert shift[3] == pytest.approx(0.13 + 0.3 * 0.3 / 1.01 - 0.02, abs=1e-9)  # 0.20: beyond Limits.shift


def _report(name, tags):
    from ensemble.check import MemberReport, SplitStats

    stats = SplitStats({}, {}, 0, [], 0.0, 0.0, 0.0)
    return MemberReport(name, stats, stats, flags=[f"{tag} of {name}" for tag in tags], tags=list(tags))


def test_a_reason_most_members_share_is_said_of_the_split_not_of_each_member():
    reports = [_report("m0", ["distribution"]), _report("m1", ["distribution"]), _report("m2", [])]
    reports += [_report("m3", ["distribution", "shifted"]), _report("m4", [])]
    with pytest.raises(MemberCheckError) as caught:
        raise_if_flagged(reports)
    message = str(caught.value)
    assert message.startswith(
        "member check failed: the test split itself looks different from validation (the output distribution "
        "moves unlike the others' predict for 3 of 5 members (m0, m1, m3)): the check cannot tell whether a "
        "member or the videos changed; member 'm3': shifted of m3. To go on, fuse without it (--drop-member m3) "
        "or vouch for them (--accept m0 --accept m1)"
    ), message
    assert "distribution of m" not in message
    two_of_five = [_report("m0", ["distribution"]), _report("m1", ["distribution"])] + reports[2:3] + reports[4:]
    with pytest.raises(MemberCheckError, match="member 'm0': distribution of m0; member 'm1': distribution of m1"):
        raise_if_flagged(two_of_five + [_report("m5", [])])


@pytest.mark.parametrize("labels", [True, False], ids=["labels", "consensus"])
def test_no_flag_on_clean_members_of_mixed_calibration_when_the_test_labels_are_distributed_otherwise(labels):
    """Members sharp, flat, eager or shy (the same on both splits); test EXPR shares redrawn, AU rates and VA
    offsets moved by up to 0.3 (benchmarks/bench_check.py measures it on many more)."""
    from ensemble.simulate import CALIBRATIONS, random_prevalences

    flagged = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        kinds = list(CALIBRATIONS)
        specs = [MemberSpec(float(rng.uniform(0.3, 1.5)), 0.0, 0.0, *CALIBRATIONS[k]) for k in kinds]
        fit_labels, fit_tables, _, apply_tables = simulate_splits(
            int(rng.integers(12, 31)), 300, specs, seed=200 + seed, prevalences=random_prevalences(rng)
        )
        val, test = align(fit_tables), align(apply_tables)
        truths = truths_for(val.keys, fit_labels, val.edition) if labels else None
        flagged += [(seed, r.name, r.flags) for r in check_members(val, test, truths) if r.flags]
    assert flagged == [], f"false alarms: {flagged}"


def _world_split(rng, rates, videos, frames, members, difficulty):
    """AU labels and members' tables built unlike ``ensemble.simulate``, the way real splits differ: each video
    (subject) with its own AU rates around the split's, AU6 only with AU12, a tenth of the frames unannotated,
    members sharp on some units and flat or biased on others (``members``: per-unit gain and offset), errors
    shared between members (hard frames) and videos of different difficulty."""
    from scipy.ndimage import gaussian_filter1d

    from ensemble.contract import PredictionTable, TableMeta
    from ensemble.tasks import get_edition

    ed = get_edition(2025)
    keys = pd.DataFrame({"video": np.repeat([f"w{i:03d}" for i in range(videos)], frames)})
    keys["frame"] = np.tile(np.arange(1, frames + 1), videos)
    own = np.clip(rates * np.exp(rng.normal(0, 0.5, (videos, len(rates)))), 0.01, 0.95)
    starts = rng.random((videos, frames // 10, len(rates))) < own[:, None, :]
    y = np.repeat(starts, 10, axis=1).reshape(-1, len(rates)).astype(float)
    y[:, 3] *= y[:, 6]  # AU6 (cheek raiser) only with AU12 (lip corner puller)
    shared = gaussian_filter1d(rng.normal(0, 1, y.shape), 3, axis=0) * 2.0
    hard = np.repeat(rng.uniform(*difficulty, videos), frames)[:, None]
    tables = []
    for m, (gain, offset) in enumerate(members):
        logits = gain * (2 * y - 1) + offset + hard * (0.6 * shared + 0.8 * rng.normal(0, 1, y.shape))
        data = pd.concat([keys, pd.DataFrame(1 / (1 + np.exp(-logits)), columns=ed.output_columns("au"))], axis=1)
        tables.append(
            PredictionTable(data.astype({c: np.float32 for c in data.columns[2:]}), TableMeta(("au",), member=f"w{m}"))
        )
    annotated = rng.random(len(y)) > 0.1
    labels = pd.concat([keys, pd.DataFrame(y.astype(int), columns=ed.label_columns("au"))], axis=1)[annotated]
    return {"au": labels.reset_index(drop=True)}, tables


def _world(seed: int):
    """Validation labels and both splits' tables of five members from weak to strong on 80 videos of 200 frames
    (Aff-Wild2's number of validation videos), every AU rate moved by up to 0.3 on test, test videos harder."""
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.03, 0.6, 12)
    moved = np.clip(rates + rng.uniform(-0.3, 0.3, 12), 0.02, 0.9)
    members = [(s * rng.uniform(0.6, 1.4, 12), rng.normal(-0.5, 0.7, 12)) for s in (0.4, 0.7, 1.0, 2.0, 3.0)]
    fit_labels, fit_tables = _world_split(rng, rates, 80, 200, members, (0.7, 1.2))
    _, apply_tables = _world_split(rng, moved, 80, 200, members, (0.8, 1.4))
    return fit_labels, fit_tables, apply_tables


@pytest.mark.parametrize("seed", [0, 1])
def test_no_flag_on_members_of_a_world_unlike_the_simulator_and_a_stale_one_is(seed):
    """Before the check learnt members' sensitivity, the weakest members were flagged on both worlds."""
    fit_labels, fit_tables, apply_tables = _world(seed)
    val, test = align(fit_tables), align(apply_tables)
    truths = truths_for(val.keys, fit_labels, val.edition)
    assert [r.name for r in check_members(val, test, truths) if r.flags] == []
    assert [r.name for r in check_members(val, test) if r.flags] == []  # consensus in place of the labels
    stale = apply_tables[2].data.copy()
    stale[stale.columns[2:]] *= np.float32(0.3)
    apply_tables[2] = type(apply_tables[2])(stale, apply_tables[2].meta)
    reports = check_members(val, align(apply_tables), truths)
    assert [r.name for r in reports if r.flags] == ["w2"] and "distribution" in reports[2].tags
