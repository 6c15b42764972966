"""The launch of one process among several: device and precision choices, clear errors, shares of work."""

import sys

import numpy as np
import pytest
import torch

from ensemble.cli import main
from ensemble.errors import AffectEnsError
from members.training.distributed import Launch, launch_from_env, resolve_precision, shard, split_range


def test_more_processes_than_visible_gpus_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(AffectEnsError, match="torchrun started 4 processes on this node but 2 GPU"):
        launch_from_env()


def test_precision_is_resolved_per_device():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(AffectEnsError, match="fp16 needs a GPU"):
        resolve_precision("fp16", cpu)
    with pytest.raises(AffectEnsError, match="choose one of auto, fp32, bf16, fp16"):
        resolve_precision("fp8", cpu)


@pytest.mark.parametrize(
    "option, message",
    [
        (["--precision", "fp16"], "--precision fp16 needs a GPU; on a CPU use bf16 or fp32"),
        (["--sync-bn"], "--sync-bn needs GPUs"),
    ],
)
def test_gpu_only_options_on_a_cpu_are_one_line_errors(tiny_dataset, tmp_path, monkeypatch, capsys, option, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["affect-ens", "train-member", "cnn", "--data", str(tiny_dataset[0])])
    sys.argv += ["--out", str(run), *option]
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.startswith("error: ") and message in err and "\n" not in err
    assert not run.exists()


def test_shares_are_contiguous_balanced_and_cover_everything():
    two = [Launch(rank=r, world=2, device=torch.device("cpu")) for r in range(2)]
    assert [shard([5, 1, 1, 1, 1, 1], la) for la in two] == [slice(0, 1), slice(1, 6)]
    assert [split_range(7, la) for la in two] == [range(0, 3), range(3, 7)]
    rng = np.random.default_rng(0)
    for world in (1, 2, 3, 5):
        sizes = rng.integers(1, 500, rng.integers(1, 12)).tolist()
        parts = [shard(sizes, Launch(rank=r, world=world, device=torch.device("cpu"))) for r in range(world)]
        assert parts[0].start == 0 and parts[-1].stop == len(sizes)
        assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
        if len(sizes) >= world:
            totals = [sum(sizes[p]) for p in parts]
            assert max(totals) - min(totals) <= 2 * max(sizes)
