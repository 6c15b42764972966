"""Several processes, one job: what torchrun tells each process, the process group, and the few collectives
the members use.

``torchrun --nproc-per-node N -m ensemble.cli train-member ...`` starts N copies of the command and sets
RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE in each; ``launch_from_env`` reads them, picks the device
(GPU ``LOCAL_RANK`` or the CPU) and joins the process group (NCCL on GPUs, Gloo on CPUs). Without torchrun a
command is the only process of a world of one and nothing here opens a connection.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from ensemble.errors import AffectEnsError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""--precision choices; auto is bf16 on a GPU that has it (else fp16) and fp32 on a CPU."""
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


DEVICES = ("auto", "cpu", "cuda")
"""--device choices of the video commands."""


def choose_device(choice: str, launch: Launch | None = None) -> torch.device:
    """``--device`` made concrete: auto is this process's GPU where torch sees one, else the CPU; cuda where
    torch sees none is an error."""
    if choice not in DEVICES:
        raise AffectEnsError(f"--device {choice!r}: choose one of {', '.join(DEVICES)}")
    if choice == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if choice == "cuda":
            raise AffectEnsError("--device cuda: torch sees no CUDA GPU on this machine; use --device cpu or auto")
        return torch.device("cpu")
    return launch.device if launch is not None and launch.device.type == "cuda" else torch.device("cuda")


@dataclass(frozen=True)
class Launch:
    """How this process takes part: its rank among ``world`` processes, its device, and the requested
    precision, ``torch.compile``, SyncBatchNorm and data-loader workers."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=pick_device)
    precision: str = "fp32"  # resolved: fp32, bf16 or fp16
    compile: bool = False
    sync_bn: bool = False
    workers: int = 0  # data-loader worker processes per training process

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for the forward pass and the loss (a no-op in fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.precision])

    def record(self, batch_size: int) -> dict:
        """What config.json keeps of the launch: ``batch_size`` is per process, the global batch is the sum."""
        return {
            "world_size": self.world,
            "global_batch_size": batch_size * self.world,
            "precision": self.precision,
            "compile": self.compile,
            "sync_batchnorm": self.sync_bn,
        }


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` made concrete for ``device``; fp16 needs a GPU (its loss scaling is for CUDA)."""
    if precision not in PRECISIONS:
        raise AffectEnsError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise AffectEnsError("--precision fp16 needs a GPU; on a CPU use bf16 or fp32")
    return precision


def local_device(local_rank: int, local_world: int) -> torch.device:
    """GPU ``local_rank`` when GPUs are visible (one per process, or an error), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    visible = torch.cuda.device_count()
    if local_world > visible:
        raise AffectEnsError(
            f"torchrun started {local_world} processes on this node but {visible} GPU(s) are visible: use "
            f"--nproc-per-node {visible} or fewer (or hide the GPUs with CUDA_VISIBLE_DEVICES= to run on CPUs)"
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    if not value.isdigit():
        raise AffectEnsError(f"environment variable {name}={value!r} is not a process count or rank")
    return int(value)


def launch_from_env(precision: str = "auto", compile: bool = False, sync_bn: bool = False, workers: int = 0) -> Launch:
    """This process's launch, from torchrun's environment; joins the process group when there are several."""
    world, rank = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0)
    device = local_device(_env_int("LOCAL_RANK", 0), _env_int("LOCAL_WORLD_SIZE", 1))
    precision = resolve_precision(precision, device)
    if sync_bn and device.type != "cuda":
        raise AffectEnsError("--sync-bn needs GPUs: PyTorch's SyncBatchNorm runs on CUDA only")
    if world > 1 and not dist.is_initialized():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)  # torchrun stops the others when one fails: clean up
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", device_id=_device_id(device))
        atexit.register(end_launch)  # kept for the process's life: commands run one after another reuse it
        # DDP's note on depthwise convolutions (ConvNeXt, EfficientNet) whose gradient layout differs from its
        # buckets: a possible slowdown, not an error, printed by every process at the first step
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return Launch(rank, world, device, precision, compile, sync_bn, workers)


def _device_id(device: torch.device) -> torch.device | None:
    return device if device.type == "cuda" else None


def _exit_on_sigterm(signum, frame) -> None:
    sys.exit(128 + signum)  # raises SystemExit: context managers remove what a failed command made


def end_launch() -> None:
    """Leave the process group (if this process joined one); runs when the process exits."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def gather(launch: Launch, value: object) -> list:
    """Every rank's ``value``, in rank order, on every rank."""
    if launch.world == 1:
        return [value]
    values: list = [None] * launch.world
    dist.all_gather_object(values, value)
    return values


def gather_to_main(launch: Launch, value: object) -> list | None:
    """Every rank's ``value``, in rank order, on rank 0 (None on the others)."""
    if launch.world == 1:
        return [value]
    values: list | None = [None] * launch.world if launch.main else None
    dist.gather_object(value, values, dst=0)
    return values


def sum_over_ranks(launch: Launch, values: torch.Tensor) -> torch.Tensor:
    """``values`` summed over every rank (on every rank)."""
    if launch.world > 1:
        values = values.clone()
        dist.all_reduce(values)
    return values


def wait_for_all(launch: Launch) -> None:
    """Every rank waits here until all have reached it (what rank 0 wrote before it is then in place)."""
    if launch.world > 1:
        dist.barrier()


def split_range(count: int, launch: Launch) -> range:
    """This rank's contiguous share of ``count`` items (ranks take about the same number, in rank order)."""
    return range(count * launch.rank // launch.world, count * (launch.rank + 1) // launch.world)


def shard(sizes: Sequence[int], launch: Launch) -> slice:
    """The contiguous run of items (videos, frames) this rank takes, so that every rank gets about the same
    total size; concatenating the ranks' runs in rank order gives the items in their order."""
    total, bounds, seen = sum(sizes), [0], 0
    for i, size in enumerate(sizes):
        while len(bounds) < launch.world and seen + size / 2 > total * len(bounds) / launch.world:
            bounds.append(i)
        seen += size
    bounds += [len(sizes)] * (launch.world + 1 - len(bounds))
    return slice(bounds[launch.rank], bounds[launch.rank + 1])
