"""Hand-built Keras model files in the layout Keras 2 writes (no Keras needed to make them)."""

import json

import h5py
import numpy as np


def layer(kind, name, inbound, **config):
    spec = {"class_name": kind, "name": name, "config": {"name": name, **config}}
    if inbound is not None:
        spec["inbound_nodes"] = [[[src, 0, 0, {}] for src in inbound]]
    return spec


def write_keras_h5(path, class_name, layers, weights, output=None):
    """A whole-model file in the layout Keras 2 writes (model_config + model_weights/<layer>/<layer>/w:0)."""
    config = {"name": "m", "layers": layers}
    if class_name == "Model":
        config.update(input_layers=[[layers[0]["name"], 0, 0]], output_layers=[[output, 0, 0]])
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": class_name, "config": config})
        f.attrs["keras_version"] = "2.15.0"
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [spec["name"].encode() for spec in layers]
        for name, arrays in weights.items():
            names = [f"{name}/{w}:0" for w, _ in arrays]
            group.create_group(name).attrs["weight_names"] = [n.encode() for n in names]
            for n, (_, a) in zip(names, arrays):
                group[name].create_dataset(n, data=a.astype(np.float32))
    return path


def tf_hub_model(path):
    """A BiT-M R50x1 classifier as teams built it: a TensorFlow Hub layer, then a Dense head."""
    hub = {"handle": "https://tfhub.dev/google/bit/m-r50x1/1", "trainable": False, "dtype": "float32"}
    layers = [
        layer("InputLayer", "image", None, batch_input_shape=[None, 32, 32, 3]),
        layer("KerasLayer", "keras_layer", ["image"], **hub),
        layer("Dense", "expression", ["keras_layer"], units=9, use_bias=True, activation="softmax"),
    ]
    weights = {"expression": [("kernel", np.zeros((2048, 9))), ("bias", np.zeros(9))]}
    return write_keras_h5(path, "Model", layers, weights, output="expression")
