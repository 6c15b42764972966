import numpy as np
import pytest
from helpers import random_table

from ensemble.align import align
from ensemble.contract import validate_table
from ensemble.errors import ContractError


def _valid(table):
    return validate_table(table.data, table.meta, table.meta.member)


def test_align_stacks_members_on_common_key_order():
    a = _valid(random_table(seed=1, member="a"))
    b = random_table(seed=2, member="b")
    b.data = b.data.sample(frac=1.0, random_state=0).reset_index(drop=True)  # rows in another order
    b = _valid(b)
    stack = align([a, b])
    assert stack.values.shape == (2, 40, 8 + 2 + 12) and stack.members == ["a", "b"]
    np.testing.assert_array_equal(stack.task_values("va")[1], b.outputs("va"))
    assert stack.video_codes().tolist() == [0] * 20 + [1] * 20


def test_members_covering_different_frames_fail_unless_intersected():
    a = _valid(random_table(seed=1, member="a", frames=20))
    b = _valid(random_table(seed=2, member="b", frames=18))
    with pytest.raises(ContractError, match=r"4 frame\(s\) only in 'a', 0 only in 'b', first at video 'a' frame 19"):
        align([a, b])
    stack = align([a, b], policy="intersect")
    assert stack.values.shape[1] == 36
    assert stack.keys.groupby("video")["frame"].max().tolist() == [18, 18]


def test_align_uses_common_tasks_and_checks_label_sets():
    mtl = _valid(random_table(seed=1, member="mtl"))
    va = _valid(random_table(tasks=("va",), seed=2, member="va"))
    assert align([mtl, va]).tasks == ("va",)
    with pytest.raises(ContractError, match="member 'va' has no expr outputs"):
        align([mtl, va], tasks=("expr",))
    old = _valid(random_table(tasks=("expr",), edition=2020, member="old"))
    with pytest.raises(ContractError, match=r"old: expr label set of edition ABAW1 \(FG 2020\)"):
        align([mtl, old])
    with pytest.raises(ContractError, match="unknown alignment policy 'loose'"):
        align([mtl], policy="loose")


def test_duplicate_member_names_are_disambiguated():
    a, b = _valid(random_table(member="m")), _valid(random_table(member="m", seed=5))
    assert align([a, b]).members == ["m", "m#2"]


def test_stacked_values_are_each_members_values_at_each_key():
    """Block-wise filling, whether the members share their keys or are matched key by key (intersect)."""
    a = _valid(random_table(seed=1, member="a", frames=20_000))  # 40,000 rows: more than one block
    b = random_table(seed=2, member="b", frames=19_990)
    b.data = b.data.iloc[::-1].reset_index(drop=True)
    b = _valid(b)
    for stack in (align([a, a]), align([a, b], policy="intersect")):
        for m, table in enumerate((a, a) if stack.members == ["a", "a#2"] else (a, b)):
            expected = stack.keys.merge(table.data, on=["video", "frame"], how="left")[stack.columns].to_numpy()
            np.testing.assert_array_equal(stack.values[m], expected)
