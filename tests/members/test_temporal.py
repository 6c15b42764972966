"""Temporal members on tiny cached features: training, exact resume, predictions for every frame,
windows that never cross a video."""

import numpy as np
import pandas as pd
import pytest
import torch

from ensemble.contract import read_table
from ensemble.frames import video_folders
from ensemble.labels import read_labels
from ensemble.tasks import get_edition
from members.temporal import CnnRnnMember, CnnTransformerMember, TemporalConfig
from members.training.prediction import predict_member, write_prediction
from members.training.runs import load_checkpoint
from members.training.sequences import load_sequences, temporal_statistics, windows
from members.training.temporal import predict_sequences, train_temporal

ED = get_edition(2025)


def write_cache(root, split, path, dim=12, seed=0):
    """A feature cache like extract-features writes: face frames only, features carrying the labels."""
    rng = np.random.default_rng(seed)
    counts = pd.read_csv(root / f"{split}_frames.csv")
    labels_root = root / "test_labels" if split == "test" else root
    va = read_labels(labels_root, "va", split, ED).set_index(["video", "frame"])
    rows, feats, folders = [], [], video_folders(root)
    for video, n in zip(counts["video"], counts["frames"]):
        for frame in range(1, n + 1):
            if (folders[video] / f"{frame:05d}.jpg").exists():
                signal = va.loc[(video, frame)].to_numpy() if (video, frame) in va.index else np.zeros(2)
                rows.append((video, frame))
                feats.append(np.concatenate([signal, np.zeros(dim - 2)]) + rng.normal(0, 0.3, dim))
    np.savez(
        path,
        video=np.array([r[0] for r in rows]),
        frame=np.array([r[1] for r in rows]),
        features=np.array(feats, dtype=np.float32),
        count_videos=counts["video"].to_numpy(str),
        count_frames=counts["frames"].to_numpy(),
        split=split,
        run="test",
    )


@pytest.fixture(scope="module")
def caches(tiny_dataset, tmp_path_factory):
    root, _ = tiny_dataset
    folder = tmp_path_factory.mktemp("features")
    for i, split in enumerate(("train", "val", "test")):
        write_cache(root, split, folder / f"{split}.npz", seed=i)
    return root, folder


def cfg_for(folder, **kw):
    base = dict(
        features=str(folder), tasks=("expr", "va", "au"), hidden=16, window=16, stride=8, epochs=2, batch_size=4
    )
    return TemporalConfig(**{**base, **kw})


MEMBERS = {"cnn_rnn": CnnRnnMember, "cnn_transformer": CnnTransformerMember}


@pytest.mark.parametrize("name", MEMBERS)
def test_trains_and_predicts_every_frame(caches, tmp_path, name):
    root, folder = caches
    run = tmp_path / name
    history = train_temporal(MEMBERS[name], cfg_for(folder, stats=2), root, run)
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    done = predict_member(run, root, "test")
    write_prediction(done, tmp_path / "test.parquet")
    filled = done.filled
    back = read_table(tmp_path / "test.parquet")
    manifest = pd.read_csv(root / "test_frames.csv")
    assert back.data.groupby("video").size().to_dict() == dict(zip(manifest["video"], manifest["frames"]))
    assert filled == len(back.data) - len(np.load(folder / "test.npz")["frame"]) > 0
    assert back.meta.tasks == ("expr", "va", "au")


@pytest.mark.parametrize("name", MEMBERS)
def test_resume_after_a_kill_reaches_the_same_weights(caches, tmp_path, name):
    root, folder = caches
    cfg = cfg_for(folder, checkpoint_every=2, rnn="lstm")
    train_temporal(MEMBERS[name], cfg, root, tmp_path / "straight")

    class Killed(Exception):
        pass

    def kill(phase, done, total, calls=[]):  # noqa: B006  (counts calls across the run)
        calls.append(done)
        if len(calls) == 3:
            raise Killed

    with pytest.raises(Killed):
        train_temporal(MEMBERS[name], cfg, root, tmp_path / "resumed", kill)
    train_temporal(MEMBERS[name], cfg, root, tmp_path / "resumed")
    a = load_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_windows_cover_each_video_and_stay_inside_it():
    assert windows(10, 16, 8) == [(0, 10)]
    assert windows(40, 16, 8) == [(0, 16), (8, 24), (16, 32), (24, 40)]
    assert windows(41, 16, 8)[-1] == (25, 41)
    for n in range(1, 90):
        ws = windows(n, 16, 5)
        covered = np.zeros(n, bool)
        for a, b in ws:
            assert 0 <= a < b <= n
            covered[a:b] = True
        assert covered.all()


def test_a_video_is_predicted_from_its_own_frames_only(caches, tmp_path):
    """Changing another video's features leaves this video's predictions exactly as they were."""
    root, folder = caches
    cfg = cfg_for(folder, epochs=1)
    for member in MEMBERS.values():
        model = member(cfg).build_network({"in_dim": 12})
        seqs = load_sequences(folder / "val.npz", root, "val", cfg.tasks, ED)
        inputs = [s.features.copy() for s in seqs]
        before = predict_sequences(model, seqs, inputs, cfg)
        inputs[1] += 100.0
        after = predict_sequences(model, seqs, inputs, cfg)
        np.testing.assert_array_equal(before[0]["va"], after[0]["va"])
        assert not np.allclose(before[1]["va"], after[1]["va"])


def test_temporal_statistics_by_hand():
    x = np.array([[0.0], [2.0], [4.0], [6.0]])
    stats = temporal_statistics(x, 1)  # windows (edge-padded): [0,0,2] [0,2,4] [2,4,6] [4,6,6]
    np.testing.assert_allclose(stats[:, 0], [2 / 3, 2, 4, 16 / 3], rtol=1e-6)
    np.testing.assert_allclose(stats[:, 2], [0, 0, 2, 4])
    np.testing.assert_allclose(stats[:, 3], [2, 4, 6, 6])
    np.testing.assert_allclose(stats[1, 1], np.std([0, 2, 4]), rtol=1e-6)


def test_a_padded_window_is_read_as_the_unpadded_one():
    """Issue 24: RnnNet ignored the padding mask, so a bidirectional RNN read padded zeros backwards into a
    short training window's real frames (and never at prediction, where windows are not padded)."""
    torch.manual_seed(0)
    cfg = TemporalConfig(tasks=("va",), hidden=8, bidirectional=True, dropout=0.0)
    net = CnnRnnMember(cfg).build_network({"in_dim": 6}).eval()
    x = torch.randn(1, 5, 6)
    padded = torch.cat([x, torch.zeros(1, 3, 6)], dim=1)
    mask = torch.tensor([[False] * 5 + [True] * 3])
    with torch.no_grad():
        alone = net(x)["va"]
        in_batch = net(torch.cat([padded, torch.randn(1, 8, 6)]), torch.cat([mask, torch.zeros(1, 8, dtype=bool)]))
    torch.testing.assert_close(in_batch["va"][0, :5], alone[0], rtol=1e-5, atol=1e-6)


def test_predict_member_writes_every_frame_a_manifest_lists_after_the_last_face(caches, tmp_path):
    """Issue 24: TemporalMember.predict dropped --frames (and the progress), so the frames a manifest lists
    after a video's last cached face had no row."""
    from helpers import run_here

    root, folder = caches
    run = tmp_path / "rnn"
    train_temporal(CnnRnnMember, cfg_for(folder, epochs=1), root, run)
    manifest = pd.read_csv(root / "test_frames.csv").assign(frames=lambda m: m["frames"] + 3)
    manifest.to_csv(tmp_path / "frames.csv", index=False)
    out = tmp_path / "test.parquet"
    result = run_here(
        "predict-member", run, "--split", "test", "--data", root, "--out", out, "--frames", tmp_path / "frames.csv"
    )
    assert result.returncode == 0, result.stderr
    table = read_table(out).data
    assert table.groupby("video").size().to_dict() == dict(zip(manifest["video"], manifest["frames"]))
    faces = len(np.load(folder / "test.npz")["frame"])
    assert f"filled {len(table) - faces} frame(s)" in result.stderr
    seen = []
    predict_member(run, root, "test", frames=tmp_path / "frames.csv", progress=lambda done, total: seen.append(total))
    assert seen and set(seen) == {int(manifest["frames"].sum())}
