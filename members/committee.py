"""The ``committee`` member: several backbones, each a cnn member of its own, voting per frame.

By default a VGG-Face-style VGG16 leads Xception, BiT ResNetV2-50x1 and EfficientNet-B1 (timm names);
ties are decided by the lead. The committee writes its own table and each backbone's table, so the
fusion can also use the backbones separately.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ensemble.align import align
from ensemble.contract import PredictionTable, TableMeta
from ensemble.errors import AffectEnsError
from ensemble.fusion.vote import VoteFuser
from ensemble.tasks import DEFAULT_EDITION
from members.cnn import CnnConfig, CnnMember
from members.distributed import Launch
from members.registry import MEMBERS
from members.runs import BEST, make_run_folder, resumed_config, save_checkpoint, write_config

DEFAULT_BACKBONES = ("vgg16", "xception41", "resnetv2_50x1_bit", "efficientnet_b1")


@dataclass
class CommitteeConfig:
    backbones: tuple[str, ...] = DEFAULT_BACKBONES  # timm names; tiny ones (test_resnet, ...) for CPUs
    lead: str = "vgg16"  # the backbone deciding ties (VGG-Face in the seed's committee)
    weights_dir: str | None = None  # optional folder of local weights files named <backbone>.pth
    tasks: tuple[str, ...] = ("expr",)
    edition: int = DEFAULT_EDITION
    image_size: int = 112
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 0


def backbone_config(cfg: CommitteeConfig, backbone: str) -> CnnConfig:
    weights = Path(cfg.weights_dir) / f"{backbone}.pth" if cfg.weights_dir else None
    return CnnConfig(
        backbone=backbone,
        weights=str(weights) if weights and weights.exists() else None,
        tasks=tuple(cfg.tasks),
        edition=cfg.edition,
        image_size=cfg.image_size,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=cfg.seed,
        checkpoint_every=cfg.checkpoint_every,
    )


def check_lead(cfg: CommitteeConfig) -> None:
    if cfg.lead not in cfg.backbones:
        raise AffectEnsError(f"committee: lead {cfg.lead!r} is not one of its backbones: {', '.join(cfg.backbones)}")


def train_committee(
    member_cls, cfg: CommitteeConfig, data_root: Path, run_dir: Path, progress=None, *, launch=None
) -> list[dict]:
    """Train every backbone in ``run_dir/<backbone>`` (each resumable); returns one history row per backbone."""
    from members.train import train_member

    check_lead(cfg)
    launch = launch or Launch()
    cfg = resumed_config(run_dir, member_cls, cfg, launch)
    if launch.main:
        make_run_folder(run_dir)
        write_config(run_dir, member_cls, cfg, launch)
    rows = []
    for i, backbone in enumerate(cfg.backbones):
        sub = run_dir / backbone
        history = train_member(CnnMember, backbone_config(cfg, backbone), data_root, sub, progress, launch=launch)
        best = max(history, key=lambda r: r["score"])
        rows.append({**best, "epoch": i + 1, "backbone": backbone})
    if launch.main:
        save_checkpoint(run_dir / BEST, {"backbones": list(cfg.backbones), "lead": cfg.lead})  # marks it finished
    return rows


def committee_vote(tables: list[PredictionTable], lead: str) -> PredictionTable:
    """Per-frame majority vote of the backbones' tables, ties decided by ``lead``."""
    stack = align(tables)
    fuser = VoteFuser(tie_break="lead", lead=lead).fit(stack, {})
    from ensemble.pipeline import FittedFusion, fused_table

    table = fused_table(stack, fuser.predict(stack), FittedFusion(fuser))
    table.meta.extra["method"] = f"committee vote, ties by {lead}"
    return table


def predict_committee(
    cfg: CommitteeConfig, run_dir: Path, data_root: Path, split: str, frames=None, progress=None, launch=None
):
    """The committee's voted table, with each backbone's own table as a part (under torchrun rank 0 gets them;
    the other processes get an empty ``Prediction``)."""
    from members.predict import Prediction, predict_member

    parts, filled = {}, 0
    for backbone in cfg.backbones:
        done = predict_member(run_dir / backbone, data_root, split, frames=frames, progress=progress, launch=launch)
        parts[backbone], filled = done.table, done.filled  # its member name is its run folder's: the backbone
    if done.table is None:
        return Prediction(None, 0)
    voted = committee_vote(list(parts.values()), cfg.lead)
    voted.meta = TableMeta(
        tuple(cfg.tasks),
        cfg.edition,
        run_dir.name,
        split,
        {**voted.meta.extra, "config": asdict(cfg), "filled_frames": filled},
    )
    return Prediction(voted, filled, parts)


@MEMBERS.register("committee")
class CommitteeMember:
    """Backbones voting per frame, ties broken by the lead."""

    config_class = CommitteeConfig
    train = staticmethod(train_committee)
    predict = staticmethod(predict_committee)
