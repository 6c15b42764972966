"""A training run's folder: its config.json (written by ``write_config`` alone), its checkpoints (read with
``load_checkpoint`` alone, which never unpickles code), and the check that a re-run resumes the same training.

A run folder holds ``config.json`` (the member's registry name, every field of its config, and how it was launched),
``last.pt`` (everything to resume), ``best.pt`` (the weights of the best validation epoch) and
``history.json``; each is written whole or not at all (``ensemble.outputs.atomic_file``).
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ensemble.errors import DataError
from ensemble.io import read_json_object
from ensemble.outputs import CHECKPOINT, STAMP, TMP_TAG, atomic_file, write_marker
from members.base import Member
from members.configs import MemberConfig
from members.registry import load_members, registry_name
from members.training.distributed import Launch

CONFIG, LAST, BEST, HISTORY = "config.json", CHECKPOINT, "best.pt", "history.json"
RECORD_KEYS = ("generator", "member", "launch")
"""Keys of config.json that describe the run rather than configure the member."""
RETIRED_KEYS = ("amp",)
"""Config fields of earlier versions, ignored when read (``amp`` became the launch option --precision)."""


class RunMismatchError(DataError):
    """A re-run names another member or other options than the run it would resume."""


def write_json(path: Path, doc: object) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")


def write_config(run: Path, member_cls, cfg, launch: Launch | None = None) -> None:
    """``run/config.json``: the member's registry name, every config field, and the launch (world size,
    global batch). The one writer of a run's config."""
    doc = {"generator": STAMP, "member": registry_name(member_cls), **asdict(cfg)}
    if launch is not None:
        doc["launch"] = launch.record(cfg.batch_size)
    write_json(run / CONFIG, doc)


def read_config(run: Path) -> dict | None:
    """The run's config.json as a dict; None when the folder holds none yet."""
    path = run / CONFIG
    if not path.is_file():
        return None
    doc = read_json_object(path, "run config")
    if "member" not in doc:
        raise DataError(f"{path}: not a run's config.json (no 'member')")
    return doc


def config_values(doc: dict, config_class, strict: bool = False) -> dict:
    """The fields of ``config_class`` found in a config.json (older runs may lack newer fields); ``strict``:
    a key that is no field (nor a record or retired key) is a ``KeyError``."""
    known = {f.name for f in fields(config_class)}
    foreign = set(doc) - known - set(RECORD_KEYS) - set(RETIRED_KEYS)
    if strict and foreign:
        raise KeyError(sorted(foreign)[0])
    return {k: tuple(v) if isinstance(v, list) else v for k, v in doc.items() if k in known}


def registered_name(stored: str) -> str:
    """The registry name of the member a config.json names: its registry name, or (runs of earlier versions)
    its class name, e.g. 'CnnMember' -> 'cnn'; an unknown name is returned as it is."""
    members = load_members()
    if stored in members:
        return stored
    return next((n for n in members.names() if members.get(n).__name__ == stored), stored)


def check_member(run: Path, doc: dict, member_cls) -> None:
    found, wanted = registered_name(doc["member"]), registry_name(member_cls)
    if found != wanted:
        raise RunMismatchError(f"{run}: is a {found} run, not {wanted}; choose a new --out")


def _plain(value: object) -> object:
    return json.loads(json.dumps(value))


def _option(name: str, value: object) -> str:
    """``--name value`` as a user types it (lists comma-separated, long values cut)."""
    value = _plain(value)
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    flag = {"tasks": "task"}.get(name, name).replace("_", "-")
    return f"--{flag} {text if len(text) <= 40 else text[:37] + '...'}"


def _stamp(path: Path) -> tuple[int, int] | None:
    """(modification time, size) of the file at ``path``; None when there is none."""
    try:
        found = path.stat()
    except (FileNotFoundError, NotADirectoryError):  # no such file, or a file where the run folder should be
        return None
    return found.st_mtime_ns, found.st_size


@dataclass(frozen=True, eq=False)
class TrainingRun:
    """The run folder a member trains in, its config.json read and its member checked once (``open``): a new
    run has no ``doc``. ``options`` are the run's own options (a re-run names only what it changes), ``resume``
    the config a (re)training uses. train-member opens it once and hands it to the member's ``train``."""

    path: Path
    member_cls: type[Member]
    doc: dict | None  # config.json as read; None for a new run
    stamp: tuple[int, int] | None  # config.json's (mtime, size) when it was read

    @classmethod
    def open(cls, path: Path, member_cls) -> TrainingRun:
        """The run at ``path`` for training ``member_cls``; a run of another member is a one-line error."""
        path = Path(path)
        stamp = _stamp(path / CONFIG)
        doc = read_config(path)
        if doc is not None:
            check_member(path, doc, member_cls)
        return cls(path, member_cls, doc, stamp)

    @classmethod
    def of(cls, run: Path | TrainingRun, member_cls) -> TrainingRun:
        """``run`` opened, or as its caller opened it: read again only if config.json changed since (another
        command trained in the folder between the caller's read and its lock)."""
        if isinstance(run, TrainingRun) and run.member_cls is member_cls and _stamp(run.path / CONFIG) == run.stamp:
            return run
        return cls.open(run.path if isinstance(run, TrainingRun) else run, member_cls)

    def options(self) -> dict:
        """The run's own config fields; {} for a new run."""
        return {} if self.doc is None else config_values(self.doc, self.member_cls.config_class)

    def resume(self, cfg, launch: Launch):
        """``cfg`` for (re)training with ``launch``: a new run takes it as it is; an existing run must have the
        same options (a larger ``epochs`` extends it) and keeps its global batch size, so another number of
        processes each take global / processes samples per step."""
        if self.doc is None:
            return cfg
        saved, world = config_values(self.doc, type(cfg)), self.doc.get("launch", {}).get("world_size", 1)
        cfg = _keep_global_batch(self.path, cfg, saved["batch_size"], world, launch)
        differ = [
            f"{_option(k, v)} (the run's: {_option(k, saved[k]).split(' ', 1)[1]})"
            for k, v in asdict(cfg).items()
            if k in saved
            and k != "batch_size"
            and _plain(v) != _plain(saved[k])
            and not (k == "epochs" and v > saved[k])
        ]
        if cfg.batch_size * launch.world != saved["batch_size"] * world:
            differ.append(
                f"--batch-size {cfg.batch_size} x {launch.world} process(es) (the run's: {saved['batch_size']} x {world})"
            )
        if differ:
            raise RunMismatchError(
                f"{self.path}: exists with other options: {', '.join(differ)}; re-run with the run's options "
                "(a larger --epochs extends it) or choose a new --out"
            )
        return cfg


def _keep_global_batch(run: Path, cfg, batch: int, world: int, launch: Launch):
    """``cfg`` with the per-process batch that keeps the run's global batch (``batch`` x ``world``) when the run
    is resumed by another number of processes with its own per-process batch."""
    if cfg.batch_size != batch or launch.world == world:
        return cfg
    if batch * world % launch.world:
        raise RunMismatchError(
            f"{run}: its global batch of {batch * world} does not split over {launch.world} processes; "
            f"resume it with a number of processes that divides {batch * world}"
        )
    return replace(cfg, batch_size=batch * world // launch.world)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint's tensors and plain values; a file holding any other Python object is refused, since
    unpickling it could run code (``torch.load(weights_only=True)``)."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: checkpoint not found") from None
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        held = f" ({found.group(1)})" if found else ""
        raise DataError(
            f"{path}: holds a Python object{held} or other data than weights and plain values; "
            "refused (loading it could run code)"
        ) from None
    except Exception as exc:  # noqa: BLE001  torch raises many types for a damaged file
        raise DataError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise DataError(f"{path}: not a checkpoint of this tool (no 'model' weights)")
    return state


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


def make_run_folder(run: Path) -> None:
    """Create the run folder, marked as the tool's (so train-member may resume it), unless it exists."""
    if not run.exists():
        run.mkdir(parents=True)
        write_marker(run, "run")


def clear_run_temps(run: Path) -> None:
    """Temporary files of writes that a killed command left in the run (call with the run's lock held)."""
    for stale in run.rglob(f".*{TMP_TAG}*"):
        stale.unlink(missing_ok=True)


def load_weights(model: nn.Module, weights: dict, path: Path) -> None:
    """``weights`` into ``model``; weights of another config or version of the member are a one-line error."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:160]
        raise DataError(f"{path}: the weights do not fit the run's config.json ({detail})") from None


@dataclass(frozen=True, eq=False)
class Run:
    """A finished run folder, its config.json read and checked once (``Run.open``): the member class it names,
    the member's config, and the path. ``Member.from_run(run)`` is its member; ``load_network`` its network."""

    path: Path
    member_cls: type[Member]
    config: MemberConfig
    doc: dict  # config.json as it is on disk (prediction tables carry it)

    @classmethod
    def open(cls, path: Path) -> Run:
        """The finished run at ``path``; config.json names the member by its registry name (or, in runs of
        earlier versions, by its class name). Anything else is a one-line error."""
        path = Path(path)
        doc = read_config(path)
        if doc is None or not (path / BEST).is_file():
            raise DataError(f"{path}: not a finished run (needs {CONFIG} and {BEST})")
        name = registered_name(doc["member"])
        if name not in load_members():
            raise DataError(f"{path / CONFIG}: names no known member ({doc['member']!r})")
        member_cls = load_members().get(name)
        try:
            config = member_cls.config_class(**config_values(doc, member_cls.config_class, strict=True))
        except (KeyError, TypeError):
            raise DataError(f"{path / CONFIG}: does not fit member {name} (fields differ)") from None
        return cls(path, member_cls, config, doc)

    @property
    def name(self) -> str:
        """The member's registry name."""
        return registry_name(self.member_cls)

    def best(self, device: torch.device | str = "cpu") -> dict[str, Any]:
        return load_checkpoint(self.path / BEST, device)

    def load_network(self) -> nn.Module:
        """The member's network with the run's best weights, in eval mode (the one place a run becomes a
        network: prediction, feature extraction, video and webcam inference all load through it)."""
        state = self.best()
        model = Member.from_run(self).build_network(state)
        load_weights(model, state["model"], self.path / BEST)
        return model.eval()
