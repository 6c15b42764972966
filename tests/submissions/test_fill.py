"""Gap-filling policies on a hand-made video: which predicted frame (or blend) each missing frame gets."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensemble.contract import PredictionTable, TableMeta
from ensemble.errors import ContractError, SubmissionError
from ensemble.frames import MANIFEST, from_counts
from ensemble.tasks import get_edition
from submissions.fill import check_fill, fill, place

# Video 'a' has 6 frames, predictions on frames 2 and 5 only; video 'b' on its single frame.
TABLE = PredictionTable(
    pd.DataFrame(
        {"video": ["a", "a", "b"], "frame": [2, 5, 1], "valence": [0.2, 0.8, -0.5], "arousal": [0.0, 0.3, 0.1]}
    ),
    TableMeta(("va",), 2025),
)
SOURCE = from_counts(MANIFEST, Path("frames.csv"), {"a": 6, "b": 1})


@pytest.mark.parametrize(
    "policy, valence",
    [
        ("previous", [0.2, 0.2, 0.2, 0.2, 0.8, 0.8]),  # frame 1 has no earlier frame: the next one
        ("nearest", [0.2, 0.2, 0.2, 0.8, 0.8, 0.8]),  # frame 3 is nearer 2, frame 4 nearer 5
        ("linear", [0.2, 0.2, 0.4, 0.6, 0.8, 0.8]),
    ],
)
def test_each_policy_fills_the_gaps_as_named(policy, valence):
    placement = place(TABLE, SOURCE)
    values = fill(TABLE.outputs("va"), placement, policy)
    np.testing.assert_allclose(values[:6, 0], valence, atol=1e-6)
    np.testing.assert_allclose(values[6], [-0.5, 0.1], atol=1e-6)
    assert placement.filled == 4 and placement.exact.tolist() == [False, True, False, False, True, False, True]


def test_sentinel_only_where_participants_used_it():
    assert check_fill("sentinel", get_edition(2021)) == "sentinel"
    with pytest.raises(
        SubmissionError, match=r"--fill sentinel is for ABAW2 \(ICCV 2021\) only .* takes: previous, nearest or linear"
    ):
        check_fill("sentinel", get_edition(2025))
    with pytest.raises(
        SubmissionError, match="unknown fill policy 'mean'; choose one of: previous, nearest, linear, sentinel"
    ):
        check_fill("mean", get_edition(2025))


def test_videos_beyond_the_source_are_counted_and_missing_ones_refused():
    extra = PredictionTable(pd.concat([TABLE.data, TABLE.data.assign(video="z")]), TABLE.meta)
    assert place(extra, SOURCE).dropped == 1
    with pytest.raises(
        ContractError, match=r"no predictions for 1 video\(s\) of the frame source frames.csv, first 'c'"
    ):
        place(TABLE, from_counts(MANIFEST, Path("frames.csv"), {"a": 6, "b": 1, "c": 4}))
    with pytest.raises(
        ContractError, match=r"frames past the video's length in 1 video\(s\), first 'a' \(frame 5 of 4\)"
    ):
        place(TABLE, from_counts(MANIFEST, Path("frames.csv"), {"a": 4, "b": 1}))
