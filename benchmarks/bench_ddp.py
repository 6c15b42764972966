"""Training throughput of the cnn member in 1 and 2 processes under torchrun (DistributedDataParallel), and on
one GPU with bf16 where there is one: global images/s and the share of the step spent waiting for data.

    python benchmarks/bench_ddp.py [--backbone resnet10t] [--image-size 64] [--batch-size 16] [--steps 12]

Each measurement is a torchrun launch of this file in worker mode; the workers use the training loop's own
pieces (the member's Fit, DistributedSampler batches, the DDP-wrapped network, autocast), time ``--steps``
global steps after two warm-up steps, and rank 0 prints one JSON line. ``--batch-size`` is per process, as in
train-member: two processes take twice the global batch per step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

DATA = Path(__file__).parent / "_data" / "ddp"
REPO = Path(__file__).resolve().parents[1]


def timed_steps(fit, cfg, launch, steps: int) -> dict:
    """Seconds of ``steps`` training steps (after 2 warm-up steps) and of the waits for data within them."""
    from members.training.loop import Progression, epoch_loader, prepare

    net, model = prepare(fit.model, launch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    total = wait = 0.0
    done, epoch = 0, 0
    while done < steps + 2:
        batches = iter(epoch_loader(fit, cfg, launch, Progression(epoch=epoch)))
        while done < steps + 2:
            start = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            fetched = time.perf_counter()
            batch = tuple(t.to(launch.device, non_blocking=True) for t in batch)
            with launch.autocast():
                loss = fit.loss(net, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()  # waits for the device
            if done >= 2:
                total, wait = total + time.perf_counter() - start, wait + fetched - start
            done += 1
        epoch += 1
    return {"seconds": total, "data_seconds": wait}


def worker(args) -> None:
    from members.cnn import CnnConfig, CnnMember
    from members.training.distributed import launch_from_env
    from members.training.loop import image_fit

    launch = launch_from_env(args.precision, workers=args.workers)
    cfg = CnnConfig(backbone=args.backbone, image_size=args.image_size, batch_size=args.batch_size, tasks=("expr",))
    torch.manual_seed(0)
    fit = image_fit(CnnMember, cfg, DATA, launch)
    result = timed_steps(fit, cfg, launch, args.steps)
    if launch.main:
        images = args.steps * args.batch_size * launch.world
        threads = torch.get_num_threads()
        print(json.dumps({**result, "images": images, "world": launch.world, "threads": threads, **vars(args)}))


def launch(nproc: int, args, precision: str = "fp32", threads: int | None = None) -> dict:
    """Run this file under torchrun with ``nproc`` processes (``threads`` each: torchrun gives several
    processes 1 each, a single one all cores); rank 0's measurement."""
    own = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("worker", "precision")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cmd += [__file__, "--worker", f"--precision={precision}", *own]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def report(name: str, r: dict) -> None:
    print(
        f"{name:<28} {r['threads']} thread(s) each, global batch {r['batch_size'] * r['world']:>3}   "
        f"{r['images'] / r['seconds']:7.1f} images/s   "
        f"step {1000 * r['seconds'] / r['steps']:6.0f} ms   waiting for data {100 * r['data_seconds'] / r['seconds']:4.1f} %"
    )


def main(args) -> None:
    from members.synthetic.dataset import SyntheticConfig, make_dataset

    if not (DATA / "dataset.json").exists():
        make_dataset(DATA, SyntheticConfig(train_videos=4, val_videos=1, test_videos=1, size=args.image_size))
    load = os.getloadavg()[0]
    print(f"cnn {args.backbone} at {args.image_size}px, batch {args.batch_size} per process, {args.steps} steps")
    print(f"CPU: {os.cpu_count()} cores, load average {load:.2f} at the start")
    report("CPU, 1 process, fp32", launch(1, args))
    report("CPU, 1 process, fp32", launch(1, args, threads=1))
    report("CPU, 2 processes, fp32", launch(2, args))
    if torch.cuda.is_available():
        report("1 GPU, bf16", launch(1, args, "bf16"))
    else:
        print("1 GPU, bf16: not measured: no GPU on this machine (the device tool lent none to this task)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet10t")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    worker(parsed) if parsed.worker else main(parsed)
