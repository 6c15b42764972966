"""An independent numpy forward pass of a Keras .h5 model, channels last as Keras computes it.

It reads the file with h5py itself and shares no code with ``members.keras_import.converter``: kernels stay in
Keras's HWIO layout and convolutions are sums over sliding windows, so a transposition or padding
mistake in the torch import cannot be repeated here.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def load(path):
    """(layers, weights by layer name) of a whole-model .h5 file."""
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        group = f["model_weights"] if "model_weights" in f else f
        weights = {}
        for spec in config["config"]["layers"]:
            name = spec["config"]["name"]  # may hold '/': a path of nested groups in the file
            names = group[name].attrs.get("weight_names", []) if name in group else []
            names = [n.decode() if isinstance(n, bytes) else n for n in names]
            weights[name] = [np.asarray(group[name][n], np.float64) for n in names]
    return config, weights


def tf_pad(x, kernel, stride, padding, value=0.0):
    """TensorFlow 'same': out = ceil(in / stride); the extra pixel of an odd total goes bottom/right."""
    if padding == "valid":
        return x
    pads = [(0, 0)]
    for size, k, s in zip(x.shape[1:3], kernel, stride):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, pads + [(0, 0)], constant_values=value)


def windows(x, kernel, stride):
    """(N, H', W', C, kh, kw) windows of an NHWC array."""
    return sliding_window_view(x, kernel, axis=(1, 2))[:, :: stride[0], :: stride[1]]


def conv(x, kernel, stride, padding):
    x = tf_pad(x, kernel.shape[:2], stride, padding)
    return np.einsum("nhwcij,ijco->nhwo", windows(x, kernel.shape[:2], stride), kernel)


def depthwise(x, kernel, stride, padding):
    x = tf_pad(x, kernel.shape[:2], stride, padding)
    out = np.einsum("nhwcij,ijcm->nhwcm", windows(x, kernel.shape[:2], stride), kernel)
    return out.reshape(*out.shape[:3], -1)


def pool(x, size, stride, padding, kind):
    if kind == "max":
        return windows(tf_pad(x, size, stride, padding, -np.inf), size, stride).max((-2, -1))
    total = windows(tf_pad(x, size, stride, padding), size, stride).sum((-2, -1))
    count = windows(tf_pad(np.ones_like(x[:1, ..., :1]), size, stride, padding), size, stride).sum((-2, -1))
    return total / count


def act(x, name):
    if name == "softmax":
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    return {
        "linear": lambda v: v,
        "relu": lambda v: np.maximum(v, 0),
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
        "tanh": np.tanh,
    }[name](x)


def layer(kind, c, w, xs):
    x = xs[0]
    stride = tuple(c.get("strides") or c.get("pool_size") or (1, 1))
    if kind == "Conv2D":
        return act(conv(x, w[0], stride, c["padding"]) + (w[1] if c["use_bias"] else 0), c["activation"])
    if kind == "DepthwiseConv2D":
        return act(depthwise(x, w[0], stride, c["padding"]) + (w[1] if c["use_bias"] else 0), c["activation"])
    if kind == "SeparableConv2D":
        y = conv(depthwise(x, w[0], stride, c["padding"]), w[1], (1, 1), "valid")
        return act(y + (w[2] if c["use_bias"] else 0), c["activation"])
    if kind == "BatchNormalization":
        gamma, beta, mean, var = w
        return (x - mean) / np.sqrt(var + c["epsilon"]) * gamma + beta
    if kind == "Activation":
        return act(x, c["activation"])
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        return pool(x, tuple(c["pool_size"]), stride, c["padding"], "max" if kind == "MaxPooling2D" else "avg")
    if kind == "GlobalAveragePooling2D":
        return x.mean((1, 2))
    if kind == "Add":
        return sum(xs)
    if kind == "Concatenate":
        return np.concatenate(xs, -1)
    if kind == "Flatten":
        return x.reshape(len(x), -1)
    if kind == "Dense":
        return act(x @ w[0] + (w[1] if c["use_bias"] else 0), c["activation"])
    if kind == "ZeroPadding2D":
        (t, b), (le, r) = c["padding"]
        return np.pad(x, [(0, 0), (t, b), (le, r), (0, 0)])
    if kind == "Dropout":
        return x
    raise NotImplementedError(kind)


def forward(path, x, every_layer=False):
    """The model's output for NHWC inputs ``x`` in float64 (with ``every_layer``: each layer's, by name)."""
    config, weights = load(path)
    layers = config["config"]["layers"]
    values, previous = {"": np.asarray(x, np.float64)}, ""
    for spec in layers:
        name, kind = spec["config"]["name"], spec["class_name"]
        if kind == "InputLayer":
            values[name] = values[""]
            previous = name
            continue
        nodes = spec.get("inbound_nodes")  # absent in a Sequential model: each layer takes the previous one
        sources = [node[0] for node in nodes[0]] if nodes else [previous]
        previous = name
        values[name] = layer(kind, spec["config"], weights.get(name, []), [values[s] for s in sources])
    return values if every_layer else values[layers[-1]["config"]["name"]]
