"""The committee member: tiny backbones, its own and each backbone's tables, ties decided by the lead."""

import numpy as np
import pandas as pd
import pytest

from ensemble.contract import PredictionTable, TableMeta, read_table
from ensemble.errors import AffectEnsError
from ensemble.tasks import get_edition
from members.committee import CommitteeConfig, CommitteeMember, committee_vote, train_committee
from members.predict import predict_member, write_prediction

TINY = ("test_resnet", "test_efficientnet", "test_convnext")


def test_committee_trains_and_writes_its_own_and_each_backbones_table(tiny_dataset, tmp_path):
    root, summary = tiny_dataset
    cfg = CommitteeConfig(
        backbones=TINY, lead="test_efficientnet", tasks=("expr", "au"), image_size=32, epochs=1, batch_size=16
    )
    rows = train_committee(CommitteeMember, cfg, root, tmp_path / "committee")
    assert [r["backbone"] for r in rows] == list(TINY)
    out = tmp_path / "preds" / "committee_test.parquet"
    write_prediction(predict_member(tmp_path / "committee", root, "test"), out)
    own = read_table(out)
    assert own.data.groupby("video").size().to_dict() == summary["frames"]["test"]
    assert own.meta.extra["method"] == "committee vote, ties by test_efficientnet"
    for backbone in TINY:
        assert read_table(out.with_name(f"committee_test_{backbone}.parquet")).meta.tasks == ("expr", "au")


def _table(name, expr_class, k=8):
    probs = np.full((1, k), 0.1 / (k - 1))
    probs[0, expr_class] = 0.9
    ed = get_edition(2025)
    data = pd.concat(
        [pd.DataFrame({"video": ["v"], "frame": [1]}), pd.DataFrame(probs, columns=ed.output_columns("expr"))], axis=1
    )
    return PredictionTable(data, TableMeta(("expr",), 2025, member=name))


def test_a_hand_built_tie_is_decided_by_the_lead():
    tables = [_table("vgg16", 3), _table("xception41", 4), _table("resnetv2_50x1_bit", 4), _table("efficientnet_b1", 3)]
    assert committee_vote(tables, "vgg16").outputs("expr").argmax() == 3
    assert committee_vote(tables, "xception41").outputs("expr").argmax() == 4
    clear = [_table("vgg16", 3), _table("xception41", 4), _table("resnetv2_50x1_bit", 4), _table("efficientnet_b1", 4)]
    assert committee_vote(clear, "vgg16").outputs("expr").argmax() == 4  # a majority overrules the lead


def test_lead_must_be_a_backbone(tmp_path):
    with pytest.raises(AffectEnsError, match="lead 'vgg16' is not one of its backbones: test_resnet"):
        train_committee(CommitteeMember, CommitteeConfig(backbones=("test_resnet",)), tmp_path, tmp_path / "run")
