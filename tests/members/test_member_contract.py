"""The member contract: a member is one class and its config in one file (here, a toy member defined below),
trained and predicted through the command line with no other change; every config field is an option of
train-member with help, and every such option is a config field; config.json names the member by its
registry name, and runs naming the class (earlier versions) still predict; a committee's log counts the
frames it filled."""

import json
import shutil
from dataclasses import dataclass

import pytest
import torch
import typer
from helpers import run_here
from torch import nn

from ensemble.cli import app
from ensemble.contract import read_table
from ensemble.errors import DataError
from ensemble.frames import video_folders
from members import MEMBERS, MemberConfig, create_member, load_members
from members.configs import option
from members.heads import TaskHeads
from members.image import ImageMember

# --- the toy member: everything a new member needs ------------------------------------------------------


@dataclass
class ToyConfig(MemberConfig):
    """A toy member's config: the shared fields, and its own."""

    width: int = option(3, "Channels of the toy's one convolution", min=1)
    image_size: int = option(16, "Input side in pixels", min=8)


class ToyNet(nn.Module):
    def __init__(self, cfg: ToyConfig, edition):
        super().__init__()
        self.conv = nn.Conv2d(3, cfg.width, 3)
        self.heads = TaskHeads(cfg.width, tuple(cfg.tasks), edition, 0.0)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(self.features(images))

    def features(self, images: torch.Tensor) -> torch.Tensor:  # what extract-features caches
        return self.conv(images).mean((2, 3))


@MEMBERS.register("toy")
class ToyMember(ImageMember):
    """One convolution and the task heads."""

    config_class = ToyConfig

    def build_network(self, saved) -> ToyNet:
        return ToyNet(self.config, self.edition)


# --------------------------------------------------------------------------------------------------------


def _ok(*args):
    result = run_here(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def toy_run(tiny_dataset, tmp_path_factory):
    root, _ = tiny_dataset
    run = tmp_path_factory.mktemp("toy") / "run"
    _ok("train-member", "toy", "--data", root, "--out", run, "--width", 5, "--epochs", 1, "--batch-size", 16)
    return run


def test_a_toy_member_in_one_file_trains_and_predicts_through_the_cli(tiny_dataset, toy_run, tmp_path):
    root, summary = tiny_dataset
    saved = json.loads((toy_run / "config.json").read_text())
    assert saved["member"] == "toy" and saved["width"] == 5 and saved["image_size"] == 16
    out = tmp_path / "toy_test.parquet"
    _ok("predict-member", toy_run, "--split", "test", "--data", root, "--out", out)
    table = read_table(out)
    assert table.meta.tasks == ("expr",)
    assert table.data.groupby("video").size().to_dict() == summary["frames"]["test"]


def test_a_member_refuses_options_its_config_lacks(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    result = run_here("train-member", "toy", "--data", root, "--out", tmp_path / "r", "--backbone", "resnet18")
    assert (
        result.returncode == 2
        and "No such option: --backbone (see 'affect-ens train-member toy --help')" in result.stderr
    )
    assert not (tmp_path / "r").exists()


def test_config_json_names_the_registry_name_and_class_names_of_older_runs_still_predict(
    tiny_dataset, toy_run, tmp_path
):
    root, _ = tiny_dataset
    old = tmp_path / "old_run"
    old.mkdir()
    for name in ("best.pt", ".affect-ens"):
        if (toy_run / name).exists():
            (old / name).write_bytes((toy_run / name).read_bytes())
    doc = json.loads((toy_run / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**doc, "member": "ToyMember"}))  # as earlier versions wrote it
    new_out, old_out = tmp_path / "new.parquet", tmp_path / "old.parquet"
    _ok("predict-member", toy_run, "--split", "val", "--data", root, "--out", new_out)
    _ok("predict-member", old, "--split", "val", "--data", root, "--out", old_out)
    assert read_table(old_out).data.equals(read_table(new_out).data)


def test_create_member_builds_a_member_with_its_config():
    member = create_member("toy", ToyConfig(width=2))
    assert isinstance(member, ToyMember) and member.config.width == 2 and member.min_epochs == 1
    from members.pretrained import prepare

    assert prepare(create_member("cnn").config)[0].backbone == "resnet18"  # none given, no weights file: resnet18
    with pytest.raises(TypeError, match="takes a ToyConfig"):
        create_member("toy", load_members().get("cnn").config_class())


def _train_member_options(name: str) -> dict[str, object]:
    group = typer.main.get_command(app).commands["train-member"]
    command = group.get_command(None, name)
    return {param.name: param for param in command.params}


LAUNCH = {"data", "out", "config", "precision", "compile_", "sync_bn", "workers"}


@pytest.mark.parametrize("name", load_members().names())
def test_every_config_field_is_an_option_of_its_member_with_help(name):
    """A field cannot be forgotten: each has its option under train-member NAME (help included) unless it is
    marked cli=False, and NAME has no option of another member's config."""
    from dataclasses import fields

    options = _train_member_options(name)
    declared = {f.name for f in fields(MEMBERS.get(name).config_class) if f.metadata.get("cli", True)}
    assert set(options) - LAUNCH == declared
    for f in fields(MEMBERS.get(name).config_class):
        if f.name in declared:
            assert f.metadata["help"] and f.metadata["help"] in options[f.name].help


def test_a_members_options_appear_under_its_own_help_only():
    toy = _ok("train-member", "toy", "--help").stdout
    cnn = _ok("train-member", "cnn", "--help").stdout
    rnn = _ok("train-member", "cnn_rnn", "--help").stdout
    assert "--width" in toy and "--backbone" not in toy and "--rnn" not in toy
    assert "--backbone" in cnn and "--width" not in cnn and "--rnn" not in cnn and "--bidirectional" not in cnn
    assert "--rnn" in rnn and "--backbone" not in rnn and "--width" not in rnn
    listing = _ok("train-member", "--help").stdout
    assert "toy" in listing and "cnn_transformer" in listing and "--width" not in listing


def test_help_explains_every_option():
    for name in load_members().names():
        assert all(param.help for param in _train_member_options(name).values())
    keras = _ok("train-member", "keras", "--help").stdout
    for flag in ("--task", "--map", "--bgr", "--pixel-range"):
        assert flag in keras
    assert "--weights-dir" in _ok("train-member", "committee", "--help").stdout


def test_a_committee_logs_the_frames_it_filled(tiny_dataset, toy_run, tmp_path):
    """Some test frames have no face image; the committee fills exactly those, and says how many."""
    root, summary = tiny_dataset
    other = tmp_path / "other"
    _ok("train-member", "toy", "--data", root, "--out", other, "--width", 3, "--epochs", 1, "--seed", 1)
    committee = tmp_path / "committee"
    _ok("committee", toy_run, other, "--out", committee)
    faces = sum(len(list(video_folders(root)[v].glob("*.jpg"))) for v in summary["frames"]["test"])
    missing = sum(summary["frames"]["test"].values()) - faces
    assert missing > 0
    result = _ok("predict-member", committee, "--split", "test", "--data", root, "--out", tmp_path / "c.parquet")
    assert f"filled {missing} frame(s) without a face image" in result.stderr
    assert read_table(tmp_path / "c.parquet").meta.extra["filled_frames"] == missing


def test_a_config_built_in_python_checks_its_limits_like_the_command_line(tmp_path):
    """Issue 24: limits were checked by the CLI only, so create_member("cnn", CnnConfig(lr=-1)) trained; the
    command line checks them with the same function (naming the flag), and its help says them."""
    from ensemble.errors import AffectEnsError
    from members.configs import CnnConfig, TemporalConfig

    with pytest.raises(AffectEnsError, match=r"^lr must be a finite number at least 0.0, got -1$"):
        CnnConfig(lr=-1)
    result = run_here("train-member", "cnn", "--data", tmp_path, "--out", tmp_path / "run", "--lr", "-1")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: --lr must be a finite number at least 0.0, got -1.0"
    ]
    assert not (tmp_path / "run").exists()
    text = " ".join(_ok("train-member", "cnn", "--help").stdout.replace("│", " ").split())
    assert "Peak learning rate (one-cycle schedule) (default: 0.001; at least 0.0)." in text
    with pytest.raises(AffectEnsError, match="dropout must be a finite number at least 0.0 and at most 0.9"):
        TemporalConfig(dropout=1.5)
    with pytest.raises(AffectEnsError, match="width must be"):
        ToyConfig(width=0)
    assert CnnConfig(lr=0.5).lr == 0.5


def test_predict_member_reads_and_checks_the_runs_config_once(tiny_dataset, toy_run, tmp_path, monkeypatch):
    """Issue 24: predict-member read config.json three times (and built a Member it threw away); the load half
    is one Run, opened once, whose member predicts with the run's own config."""
    import members.training.runs as runs

    calls = []
    real = runs.read_json_object
    monkeypatch.setattr(runs, "read_json_object", lambda path, what: calls.append(path) or real(path, what))
    _ok("predict-member", toy_run, "--split", "val", "--data", tiny_dataset[0], "--out", tmp_path / "t.parquet")
    assert calls == [toy_run / "config.json"]
    run = runs.Run.open(toy_run)
    member = ToyMember.from_run(run)
    assert isinstance(member, ToyMember) and member.config == run.config and member.config.width == 5
    with pytest.raises(DataError, match="a toy run, not a CnnMember"):
        load_members().get("cnn").from_run(run)


def test_predict_member_reads_test_videos_from_both_frame_roots_and_refuses_a_video_in_both(
    tiny_dataset, toy_run, tmp_path
):
    """Recent test releases split the frames over cropped_aligned/ and cropped_aligned_new_50_vids/."""
    root, summary = tiny_dataset
    folders = video_folders(root)
    tests = summary["frames"]["test"]
    assert {folders[v].parent.name for v in tests} == {"cropped_aligned", "cropped_aligned_new_50_vids"}
    out = tmp_path / "test.parquet"
    _ok("predict-member", toy_run, "--split", "test", "--data", root, "--out", out)
    table = read_table(out)
    assert table.data.groupby("video").size().to_dict() == tests
    faces = sum(len(list(folders[v].glob("*.jpg"))) for v in tests)
    assert table.meta.extra.get("filled_frames", 0) == sum(tests.values()) - faces  # every face image was read
    copy = tmp_path / "data"
    shutil.copytree(root, copy)
    second = next(v for v in tests if folders[v].parent.name != "cropped_aligned")
    shutil.copytree(copy / "cropped_aligned_new_50_vids" / second, copy / "cropped_aligned" / second)
    result = run_here("predict-member", toy_run, "--split", "test", "--data", copy, "--out", tmp_path / "x.parquet")
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert errors == [
        f"error: video {second!r} has frames in two roots: {copy / 'cropped_aligned' / second} and "
        f"{copy / 'cropped_aligned_new_50_vids' / second}; keep one of them"
    ]
    assert not (tmp_path / "x.parquet").exists()
