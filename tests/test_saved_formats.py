"""Run folders and fusion files in the layout main wrote before issue 24 (3154541) still load and predict as
they did: the files below are written by hand exactly as that version's ``write_config``, checkpoints and
``FittedFusion.save`` wrote them (prediction tables are untouched by the issue: ``tests/ensemble/test_contract.py``).
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from ensemble.align import Aligned
from ensemble.pipeline import FittedFusion
from ensemble.tasks import get_edition
from ensemble.voting import vote
from members.cnn import CnnNet
from members.configs import CnnConfig, TemporalConfig
from members.temporal import RnnNet
from members.training.runs import Run

ED = get_edition(2025)
LAUNCH = {"world_size": 1, "global_batch_size": 64, "precision": "fp32", "compile": False, "sync_batchnorm": False}
CNN = {
    "tasks": ["expr", "va"],
    "edition": 2025,
    "epochs": 5,
    "batch_size": 64,
    "lr": 0.001,
    "weight_decay": 0.0001,
    "seed": 0,
    "checkpoint_every": 0,
    "backbone": "test_resnet",
    "weights": None,
    "image_size": 32,
    "dropout": 0.2,
}
RNN = {
    "tasks": ["va"],
    "edition": 2025,
    "epochs": 15,
    "batch_size": 16,
    "lr": 0.002,
    "weight_decay": 0.0001,
    "seed": 0,
    "checkpoint_every": 0,
    "features": "/x",
    "rnn": "gru",
    "bidirectional": True,
    "hidden": 8,
    "layers": 1,
    "heads": 4,
    "window": 64,
    "stride": 32,
    "stats": 0,
    "dropout": 0.1,
}


def _old_run(folder, member: str, config: dict, best: dict):
    folder.mkdir()
    doc = {"generator": "affect-ens", "member": member, **config, "launch": LAUNCH}
    (folder / "config.json").write_text(json.dumps(doc, indent=1) + "\n")
    torch.save(best, folder / "best.pt")
    return folder


@pytest.mark.parametrize("member", ["cnn", "CnnMember"])
def test_a_cnn_run_of_the_old_layout_loads_the_same_network(tmp_path, member):
    torch.manual_seed(0)
    cfg = CnnConfig(**{**CNN, "tasks": ("expr", "va")})
    net = CnnNet(cfg, ED).eval()
    best = {"model": net.state_dict(), "epoch": 1, "metrics": {"score": 0.5}}
    run = Run.open(_old_run(tmp_path / "run", member, CNN, best))
    assert run.name == "cnn" and run.config == cfg
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        loaded, saved = run.load_network()(images), net(images)
    for task in ("expr", "va"):
        torch.testing.assert_close(loaded[task], saved[task], rtol=0, atol=0)


def test_a_temporal_run_of_the_old_layout_loads_the_same_network(tmp_path):
    """Windows without padding read as before (the padding fix of issue 24 changes padded windows only)."""
    torch.manual_seed(0)
    cfg = TemporalConfig(**{**RNN, "tasks": ("va",)})
    net = RnnNet(cfg, ED, 12).eval()
    run = Run.open(_old_run(tmp_path / "rnn", "cnn_rnn", RNN, {"model": net.state_dict(), "in_dim": 12}))
    x = torch.randn(2, 7, 12)
    with torch.no_grad():
        torch.testing.assert_close(run.load_network()(x)["va"], net(x)["va"], rtol=0, atol=0)


def test_a_vote_fusion_file_of_the_old_layout_applies_as_the_vote(tmp_path):
    """The file as ``fuse --save-fusion`` wrote it; applied, EXPR goes to the majority and a tie to the lead
    ('b'), AU likewise per unit, VA is the weighted median."""
    saved = {
        "generator": "affect-ens",
        "fuser": {
            "method": "vote",
            "params": {"weights": None, "tie_break": "lead", "lead": "b"},
            "learned": {"members_": ["a", "b"], "lead_by_task_": {"expr": 1, "au": 1}},
        },
        "post": None,
        "scores": [],
    }
    (tmp_path / "vote.json").write_text(json.dumps(saved, indent=1))
    fusion = FittedFusion.load(tmp_path / "vote.json")
    rng = np.random.default_rng(0)
    tasks = ("expr", "va", "au")
    columns = [c for t in tasks for c in ED.output_columns(t)]
    values = rng.random((2, 4, len(columns))).astype(np.float32)
    keys = pd.DataFrame({"video": ["v"] * 4, "frame": [1, 2, 3, 4]})
    stack = Aligned(keys, values, columns, ["a", "b"], tasks, ED)
    out = fusion.apply(stack)
    expr = out[:, stack.slices["expr"]]
    assert (expr.argmax(1) == values[1][:, stack.slices["expr"]].argmax(1)).all()  # two members: b breaks ties
    lower = values[:, :, stack.slices["va"]].min(axis=0)  # two equal weights: the weighted median is the lower
    np.testing.assert_array_equal(out[:, stack.slices["va"]], lower)
    au = vote("au", stack.task_values("au"), np.full(2, 0.5), "lead", 1)
    np.testing.assert_array_equal(out[:, stack.slices["au"]], au.astype(np.float32))
