"""The ``committee`` member: several members voting per frame, ties broken by the lead.

Two ways to make one. ``train-member committee`` trains timm backbones, each a cnn member of its own in
``RUN/<backbone>`` (by default a VGG-Face-style VGG16 leads Xception, BiT ResNetV2-50x1 and EfficientNet-B1).
``affect-ens committee RUN... --lead RUN --out COMMITTEE`` assembles one from finished member runs of any
kind (imported Keras models, timm cnns, temporal members, other committees): the committee's run folder
names them, it copies nothing. Either way ``predict-member`` predicts with every member, votes per frame
(classes for EXPR, units for AU, the median for VA), lets the lead decide ties, and writes the committee's
table (and, on request, each member's).
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from ensemble.align import align
from ensemble.contract import PredictionTable, TableMeta
from ensemble.errors import AffectEnsError
from ensemble.tasks import TASKS, get_edition
from ensemble.voting import vote
from members.base import Member
from members.configs import CnnConfig, CommitteeConfig, MemberConfig
from members.registry import MEMBERS
from members.training.distributed import Launch
from members.training.runs import BEST, Run, TrainingRun, make_run_folder, save_checkpoint, write_config


def backbone_config(cfg: CommitteeConfig, backbone: str) -> CnnConfig:
    """The cnn config of one backbone: the committee's shared fields, and its weights file if the folder has one
    (any format ``--weights`` reads, named <backbone>.pth), with its input convention."""
    from members.pretrained import prepare

    weights = Path(cfg.weights_dir) / f"{backbone}.pth" if cfg.weights_dir else None
    shared = {f.name: getattr(cfg, f.name) for f in fields(MemberConfig)}
    weights = str(weights) if weights and weights.exists() else None
    return prepare(CnnConfig(**shared, backbone=backbone, image_size=cfg.image_size, weights=weights))[0]


def check_lead(cfg: CommitteeConfig) -> None:
    if cfg.lead not in cfg.backbones:
        raise AffectEnsError(f"committee: lead {cfg.lead!r} is not one of its backbones: {', '.join(cfg.backbones)}")


def train_committee(
    member_cls, cfg: CommitteeConfig, data_root: Path, run_dir: Path | TrainingRun, progress=None, *, launch=None
) -> list[dict]:
    """Train every backbone in ``run_dir/<backbone>`` (each resumable); returns one history row per backbone."""
    from members.cnn import CnnMember
    from members.training.loop import train_member

    if cfg.runs:
        raise AffectEnsError(
            "committee: a committee of existing runs is assembled with 'affect-ens committee', not trained"
        )
    from members.training.datasets import with_dataset

    check_lead(cfg)
    launch = launch or Launch()
    run = TrainingRun.of(run_dir, member_cls)
    cfg = run.resume(with_dataset(cfg, data_root), launch)
    if launch.main:
        make_run_folder(run.path)
        write_config(run.path, member_cls, cfg, launch)
    rows = []
    for i, backbone in enumerate(cfg.backbones):
        sub = run.path / backbone
        history = train_member(CnnMember, backbone_config(cfg, backbone), data_root, sub, progress, launch=launch)
        best = max(history, key=lambda r: r["score"])
        rows.append({**best, "epoch": i + 1, "backbone": backbone})
    if launch.main:
        save_checkpoint(run.path / BEST, {"backbones": list(cfg.backbones), "lead": cfg.lead})  # marks it finished
    return rows


# --- a committee assembled from finished runs ---------------------------------------------------------


def _member_info(path: Path) -> tuple[str, tuple[str, ...], int]:
    """(member type, tasks, edition) of a finished run; anything else is a one-line error."""
    run = Run.open(path)
    return run.name, tuple(run.config.tasks), run.config.edition


MAX_DEPTH = 4
"""Most levels of committees inside committees (a committee of plain runs is one level)."""


def committee_depth(run: Path, outer: tuple[Path, ...] = ()) -> int:
    """How many levels of committees ``run`` is (0: a plain run), refusing a committee that holds itself or
    one of ``outer`` (the committees it is a member of) and nesting deeper than ``MAX_DEPTH``."""
    here = Path(run).resolve()
    if here in outer:
        chain = " -> ".join(p.name for p in (*outer[outer.index(here) :], here))
        raise AffectEnsError(f"committee: {here} contains itself ({chain}); a committee cannot be its own member")
    if len(outer) > MAX_DEPTH:
        raise AffectEnsError(f"committee: committees nest deeper than {MAX_DEPTH} levels under {outer[0]}")
    opened = Run.open(here)
    if opened.member_cls is not CommitteeMember or not opened.config.runs:
        return 0
    return 1 + max(committee_depth(Path(r), (*outer, here)) for r in opened.config.runs)


def assemble_committee(runs: list[Path], lead: Path | None, folder: Path, out: Path | None = None) -> CommitteeConfig:
    """Write a committee run into ``folder`` (config.json, best.pt) from finished member runs voting with
    ties decided by ``lead`` (default: the first run). Members are named after their run folders, which must
    differ; they must share an edition and at least one task (the committee predicts the shared tasks)."""
    if len(runs) < 2:
        raise AffectEnsError(f"committee: {len(runs)} run given; a committee needs at least two")
    names = [Path(r).resolve().name for r in runs]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice:
        raise AffectEnsError(f"committee: two runs are named {twice!r}; members are named after their run folders")
    resolved = [Path(r).resolve() for r in runs]
    if lead is not None and Path(lead).resolve() not in resolved:
        raise AffectEnsError(f"committee: --lead {lead} is not one of its runs: {', '.join(map(str, runs))}")
    info = {name: _member_info(Path(run)) for name, run in zip(names, runs)}
    for run in runs:  # the committee will live at ``out``: none of its members may hold it
        committee_depth(Path(run), (Path(out or folder).resolve(),))
    # Editions that share label sets and scores vote alike (a run of an earlier version names its year, 2025,
    # where a new one names abaw10); the first run's edition names the committee.
    editions = {get_edition(ed) for _, _, ed in info.values()}
    if len({ed.rules() for ed in editions}) > 1:
        named = ", ".join(sorted(ed.name for ed in editions))
        raise AffectEnsError(f"committee: the runs use editions of different label sets or scores ({named})")
    tasks = tuple(t for t in TASKS if all(t in ts for _, ts, _ in info.values()))
    if not tasks:
        listing = "; ".join(f"{n}: {'+'.join(ts)}" for n, (_, ts, _) in info.items())
        raise AffectEnsError(f"committee: the runs share no task ({listing})")
    lead_name = Path(lead).resolve().name if lead is not None else names[0]
    edition = get_edition(info[names[0]][2])
    cfg = CommitteeConfig(
        backbones=(),
        lead=lead_name,
        runs=tuple(map(str, resolved)),
        tasks=tasks,
        edition=edition.key,
        label_set=edition.expr_classes if edition.title else (),  # another challenge's classes travel by name
    )
    write_config(folder, CommitteeMember, cfg)
    save_checkpoint(
        folder / BEST, {"runs": list(cfg.runs), "lead": cfg.lead}
    )  # marks it finished; members hold the weights
    return cfg


# --- voting -------------------------------------------------------------------------------------------


def committee_members(cfg: CommitteeConfig, run_dir: Path) -> dict[str, Path]:
    """Member name -> its run folder: the assembled runs, or the trained backbones inside ``run_dir``."""
    if cfg.runs:
        return {Path(run).name: Path(run) for run in cfg.runs}
    return {backbone: run_dir / backbone for backbone in cfg.backbones}


def check_member_tables(run: Run) -> None:
    """``predict-member --member-tables`` needs a committee run (other members have no member tables)."""
    if run.member_cls is not CommitteeMember:
        raise AffectEnsError(f"{run.path}: not a committee run; --member-tables applies to committees")


def committee_vote(tables: list[PredictionTable], lead: str, split: str = "") -> PredictionTable:
    """Per-frame majority vote of the members' tables (equal weights), ties decided by ``lead``."""
    stack = align(tables)
    weights, at = np.full(len(stack.members), 1 / len(stack.members)), stack.members.index(lead)
    outputs = np.concatenate([vote(t, stack.task_values(t), weights, "lead", at) for t in stack.tasks], axis=1)
    extra = {"method": f"committee vote, ties by {lead}", "members": stack.members, "post": False}
    return stack.table(outputs.astype(np.float32), "", split, extra)


def predict_committee(run: Run, data_root: Path, split: str, frames=None, progress=None, launch=None):
    """The committee's voted table, with each member's own table as a part, named after the member (under
    torchrun rank 0 gets them; the other processes get an empty ``Prediction``)."""
    from members.training.prediction import Prediction, predict_member

    committee_depth(run.path)  # a cycle or a nest too deep is refused before any member runs
    cfg, parts, filled = run.config, {}, 0
    for name, path in committee_members(cfg, run.path).items():
        done = predict_member(path, data_root, split, frames=frames, progress=progress, launch=launch)
        if done.table is not None:
            done.table.meta.member = name
        parts[name], filled = done.table, max(filled, done.filled)
    if done.table is None:
        return Prediction(None, 0)
    voted = committee_vote(list(parts.values()), cfg.lead, split)
    extra = {**voted.meta.extra, "config": asdict(cfg), "filled_frames": filled}
    voted.meta = TableMeta.of(voted.meta.tasks, voted.edition, member=run.path.name, split=split, extra=extra)
    return Prediction(voted, filled, parts)


@MEMBERS.register("committee")
class CommitteeMember(Member):
    """Members voting per frame, ties broken by the lead."""

    config_class = CommitteeConfig
    reads_images = False

    def train(self, data_root, run_dir, progress=None, *, launch=None) -> list[dict]:
        return train_committee(type(self), self.config, data_root, run_dir, progress, launch=launch)

    def predict(self, run, data_root, split, *, frames=None, progress=None, launch=None):
        return predict_committee(run, data_root, split, frames, progress, launch)
