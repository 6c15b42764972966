"""The committee member: trained from tiny backbones, or assembled from finished runs of any kind (imported
Keras models, timm cnns); its own and each member's tables; ties decided by the lead."""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pandas as pd
import pytest
from helpers import run_here
from keras_apps import NINE_CLASSES, NINE_TO_ABAW

from ensemble.contract import PredictionTable, TableMeta, read_table
from ensemble.errors import AffectEnsError
from ensemble.tasks import get_edition
from members.cnn import CnnConfig, CnnMember
from members.committee import (
    CommitteeConfig,
    CommitteeMember,
    assemble_committee,
    check_member_tables,
    committee_vote,
    train_committee,
)
from members.keras import KerasConfig, KerasMember, train_keras
from members.training.loop import train_member
from members.training.prediction import predict_member, write_prediction
from members.training.runs import Run

TINY = ("test_resnet", "test_efficientnet", "test_convnext")


def test_committee_trains_and_writes_its_own_and_each_backbones_table(tiny_dataset, tmp_path):
    root, summary = tiny_dataset
    cfg = CommitteeConfig(
        backbones=TINY, lead="test_efficientnet", tasks=("expr", "au"), image_size=32, epochs=1, batch_size=16
    )
    rows = train_committee(CommitteeMember, cfg, root, tmp_path / "committee")
    assert [r["backbone"] for r in rows] == list(TINY)
    out = tmp_path / "preds" / "committee_test.parquet"
    out.parent.mkdir()
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


# --- committees assembled from finished runs -----------------------------------------------------------


def _winners(tables: dict[str, pd.DataFrame], lead: str) -> np.ndarray:
    """Per frame: the class most members pick, the lead's pick when several classes have the most votes."""
    picks = np.stack([t.filter(like="expr_").to_numpy().argmax(1) for t in tables.values()])
    counts = np.stack([(picks == k).sum(0) for k in range(8)], 1)
    tied = (counts == counts.max(1, keepdims=True)).sum(1) > 1
    return np.where(tied, picks[list(tables).index(lead)], counts.argmax(1))


def _ok(*args):
    """A CLI step that must succeed, run in this process."""
    result = run_here(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_keras_committee_from_runs_to_a_valid_submission(keras_apps, tiny_dataset, tmp_path):
    """Four Keras models on the 9-class set, imported with the class map, voting with ties by VGG-Face."""
    root, summary = tiny_dataset
    members = {
        "vggface": ("vggface_vgg16", "h5"),
        "xception": ("xception", "keras"),
        "efficientnet": ("efficientnet_b1", "keras"),
        "resnet": ("resnet50", "h5"),
    }
    runs = {name: tmp_path / "runs" / name for name in members}
    for name, (app, fmt) in members.items():
        saved = keras_apps(app)
        _ok(
            *("train-member", "keras", "--weights", saved.files[fmt], "--data", root, "--out", runs[name]),
            *("--classes", ",".join(NINE_CLASSES), "--map", "contempt=other,uncertain=other"),
            *("--preprocess", saved.preprocess),
        )
    saved_cfg = json.loads((runs["vggface"] / "config.json").read_text())
    assert saved_cfg["classes"] == list(NINE_CLASSES) and saved_cfg["class_map"] == NINE_TO_ABAW
    committee = tmp_path / "runs" / "committee"
    assert "ties by vggface" in _ok("committee", *runs.values(), "--lead", runs["vggface"], "--out", committee).stdout
    out = tmp_path / "preds" / "committee_test.parquet"
    _ok("predict-member", committee, "--split", "test", "--data", root, "--out", out, "--member-tables")
    table = read_table(out)
    assert table.data.groupby("video").size().to_dict() == summary["frames"]["test"]
    assert table.meta.extra["method"] == "committee vote, ties by vggface"
    tables = {name: read_table(out.with_name(f"committee_test_{name}.parquet")).data for name in members}
    assert (table.data.filter(like="expr_").to_numpy().argmax(1) == _winners(tables, "vggface")).all()
    frames = root / "test_frames.csv"
    _ok("submit", out, "--track", "expr", "--frames", frames, "--out", tmp_path / "submission")
    zipped = tmp_path / "submission" / "submission.zip"
    result = run_here("validate-submission", zipped, "--track", "expr", "--frames", frames)  # its exit code counts
    assert result.returncode == 0 and "valid expr submission" in result.stdout, result.stdout + result.stderr


def _constant_keras_run(folder, data_root, name: str, winner: str):
    """A Keras model (9 classes) that picks ``winner`` whatever the face, imported as a member."""
    import keras

    inputs = keras.Input((8, 8, 3))
    dense = keras.layers.Dense(9, activation="softmax", name="fc8")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(inputs)))
    dense.set_weights([np.zeros((3, 9), np.float32), 4.0 * np.eye(9, dtype=np.float32)[NINE_CLASSES.index(winner)]])
    model.save(folder / f"{name}.h5")
    cfg = KerasConfig(weights=str(folder / f"{name}.h5"), classes=NINE_CLASSES, class_map=NINE_TO_ABAW)
    train_keras(KerasMember, cfg, data_root, folder / name)
    return folder / name


def _says(table: PredictionTable) -> list[str]:
    expr = table.data.filter(like="expr_")
    return list(expr.columns.str.removeprefix("expr_")[expr.to_numpy().argmax(1)])


def _committee(runs, lead, folder, name):
    (folder / name).mkdir()
    assemble_committee(runs, lead, folder / name)
    return folder / name


def test_ties_are_broken_by_the_lead_in_a_committee_of_runs_of_any_kind(tiny_dataset, tmp_path):
    """Two members say anger, two say happy on every frame: the lead decides. With a timm cnn beside one
    anger and one happy member, the cnn's pick wins where it agrees with one of them, the lead elsewhere."""
    root, _ = tiny_dataset
    angry = [_constant_keras_run(tmp_path, root, f"angry{i}", "anger") for i in (1, 2)]
    happy = [_constant_keras_run(tmp_path, root, f"happy{i}", "happy") for i in (1, 2)]
    four = [angry[0], happy[0], happy[1], angry[1]]
    lead_angry = _committee(four, angry[1], tmp_path, "lead_angry")
    out = tmp_path / "preds" / "lead_angry.parquet"
    _ok("predict-member", lead_angry, "--split", "test", "--data", root, "--out", out)
    assert set(_says(read_table(out))) == {"anger"}
    assert [p.name for p in out.parent.iterdir()] == ["lead_angry.parquet"]  # member tables only on request
    lead_happy = _committee(four, happy[1], tmp_path, "lead_happy")
    assert set(_says(predict_member(lead_happy, root, "test").table)) == {"happiness"}
    majority = _committee(four[:3], angry[0], tmp_path, "majority")
    assert set(_says(predict_member(majority, root, "test").table)) == {"happiness"}

    cnn = tmp_path / "cnn"
    train_member(CnnMember, CnnConfig(backbone="test_resnet", image_size=32, epochs=1, batch_size=16), root, cnn)
    done = predict_member(_committee([cnn, angry[0], happy[0]], angry[0], tmp_path, "mixed"), root, "test")
    assert list(done.parts) == ["cnn", "angry1", "happy1"]
    assert _says(done.table) == ["happiness" if c == "happiness" else "anger" for c in _says(done.parts["cnn"])]


def test_assembling_checks_the_runs(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    expr = _constant_keras_run(tmp_path, root, "expr", "fear")
    va = tmp_path / "va"
    train_member(CnnMember, CnnConfig(backbone="test_resnet", tasks=("va",), image_size=32, epochs=1), root, va)
    with pytest.raises(AffectEnsError, match=r"the runs share no task \(expr: expr; va: va\)"):
        assemble_committee([expr, va], None, tmp_path)
    with pytest.raises(AffectEnsError, match="--lead .* is not one of its runs"):
        assemble_committee([expr, va], tmp_path / "elsewhere", tmp_path)
    with pytest.raises(AffectEnsError, match="two runs are named 'expr'"):
        assemble_committee([expr, tmp_path / "x" / "expr"], None, tmp_path)
    with pytest.raises(AffectEnsError, match="not a committee run; --member-tables applies to committees"):
        check_member_tables(Run.open(expr))
    assert not (tmp_path / "config.json").exists()


def test_force_replaces_a_committee_but_never_a_trained_run(tiny_dataset, tmp_path):
    """committee --force onto a trained run (its weights and checkpoint) or another folder of ours is refused."""
    from helpers import tree_state

    root, _ = tiny_dataset
    cfg = CnnConfig(backbone="test_resnet", image_size=32, epochs=1, batch_size=16)
    runs = [tmp_path / name for name in ("a", "b", "trained")]
    for run in runs:
        train_member(CnnMember, cfg, root, run)
    _ok("committee", runs[0], runs[1], "--out", tmp_path / "c")
    _ok("committee", runs[1], runs[0], "--out", tmp_path / "c", "--force")
    before = tree_state(tmp_path)
    result = run_here("committee", runs[0], runs[1], "--out", runs[2], "--force")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "trained: is not a committee assembled by affect-ens committee" in result.stderr
    assert tree_state(tmp_path) == before


def _set_edition(run, edition):
    doc = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**doc, "edition": edition}))


def test_a_run_of_the_previous_version_joins_a_committee_of_new_runs(tiny_dataset, tmp_path):
    """An earlier version's run names its edition by year (2025, ABAW8's rules); a new run names abaw10. Their
    label sets and scores are the same, so they vote together; a run of 7-class ABAW2 is refused, naming both."""
    root, _ = tiny_dataset
    old = _constant_keras_run(tmp_path, root, "old", "anger")
    new = _constant_keras_run(tmp_path, root, "new", "anger")
    _set_edition(old, 2025)
    committee = _committee([new, old], new, tmp_path, "mixed_versions")
    assert set(_says(predict_member(committee, root, "test").table)) == {"anger"}
    _set_edition(old, "abaw2")
    with pytest.raises(AffectEnsError, match=r"different label sets or scores \(ABAW10 \(CVPR 2026\), ABAW2 "):
        assemble_committee([new, old], None, tmp_path / "refused")
