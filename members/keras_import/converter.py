"""Keras models rebuilt as torch modules, read with h5py and zipfile (no TensorFlow).

A functional or sequential model saved whole by Keras, as ``.h5`` (``model.save('m.h5')``: the architecture
in the ``model_config`` attribute, the weights under ``model_weights``) or as ``.keras`` (Keras 3: a zip of
``config.json`` and ``model.weights.h5``), becomes a graph of torch layers run in the Keras config's order.
Models nested in it (a ``keras.applications`` backbone called as a layer) become graphs of their own. Each
weight is converted from Keras's layout (HWIO kernels, channels last) to torch's (OIHW, channels first).
Keras's ``'same'`` padding is TensorFlow's: an odd total padding puts the extra pixel after (bottom, right),
which torch's symmetric padding cannot express, so it is applied explicitly. Each supported Keras layer
class is one converter registered in ``LAYERS``; a layer of any other class (a TensorFlow Hub layer, a
``Lambda``, a custom class) is a one-line error naming it and the file.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import operator
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

from ensemble.errors import DataError
from ensemble.io import CAPS, parse_json, too_large
from ensemble.registry import Registry

LAYERS: Registry = Registry("Keras layer")
"""Keras class name -> ``converter(config, weights) -> nn.Module`` (weights as numpy, in Keras order)."""
MODELS = ("Functional", "Model", "Sequential")
"""Classes of a model used as a layer of another (its config holds its own layers)."""
SEP = "::"
"""Joins a nested model's name and its layer's name in the keys of the weights dict."""


@dataclass
class KerasLayer:
    """One layer of the saved model: its class, config, the layers feeding it and its weights (or, for a
    nested model, that model)."""

    name: str
    kind: str
    config: dict
    inbound: list[str]
    weights: list[np.ndarray]
    model: KerasModel | None = None


@dataclass
class KerasModel:
    """What a saved model holds, in the order Keras runs it."""

    layers: list[KerasLayer]
    inputs: list[str]
    outputs: list[str]  # the layers whose outputs are the model's
    output_names: list[str]  # the outputs' names: the layers' names, or the keys of a dict of outputs
    input_shape: tuple[int, int, int] | None  # (height, width, channels) of the outer model, channels last


# --- reading the file ---------------------------------------------------------------------------------


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _history_names(node) -> list[str]:
    """Names of the layers feeding one inbound node (Keras 2 lists or Keras 3 ``keras_history`` dicts)."""
    if isinstance(node, dict):
        if "keras_history" in node.get("config", {}):
            return [node["config"]["keras_history"][0]]
        return [n for v in node.values() for n in _history_names(v)]
    if isinstance(node, list):
        if node and isinstance(node[0], str):  # [name, node_index, tensor_index, kwargs]
            return [node[0]]
        return [n for v in node for n in _history_names(v)]
    return []


def _inbound(layer: dict, previous: str | None, sequential: bool) -> list[str]:
    nodes = layer.get("inbound_nodes", [])
    if sequential:
        return [previous] if previous else []
    if len(nodes) > 1:
        raise DataError(f"Keras layer {layer['config']['name']!r} is shared by several inputs; not supported")
    return _history_names(nodes[0]) if nodes else []


def _raw(config: dict) -> list[dict]:
    """The layer configs of a model config (the whole file's, or a nested model's entry in it)."""
    body = config["config"]
    return body["layers"] if isinstance(body, dict) else body


def _is_model(layer: dict) -> bool:
    return layer["class_name"] in MODELS and isinstance(layer.get("config"), dict) and "layers" in layer["config"]


def _layer_weights(group, name: str) -> list[np.ndarray]:
    if name not in group:
        return []
    names = [_text(n) for n in group[name].attrs.get("weight_names", [])]
    return [np.asarray(group[name][n]) for n in names]


def _leaves(model: dict, prefix: str, source: str) -> dict[str, str]:
    """Name -> weights key of every layer inside a nested model, however deep."""
    found: dict[str, str] = {}
    for layer in _raw(model):
        name = layer["config"]["name"]
        inner = _leaves(layer, f"{prefix}{name}{SEP}", source) if _is_model(layer) else {name: prefix + name}
        for leaf, key in inner.items():
            if leaf in found:
                raise DataError(f"{source}: two layers named {leaf!r} inside nested model {model['config']['name']!r}")
            found[leaf] = key
    return found


def _owner(weight: str, leaves: dict[str, str], source: str) -> str:
    """The layer a nested model's weight belongs to, from its name ('block1_conv1/kernel:0')."""
    layer = re.sub(r":\d+$", "", weight).rsplit("/", 1)[0]
    if layer in leaves:
        return leaves[layer]
    scoped = [name for name in leaves if layer.endswith("/" + name)]
    if not scoped:
        raise DataError(f"{source}: weight {weight!r} of a nested model belongs to none of its layers")
    return leaves[max(scoped, key=len)]


def _h5_weights(group, config: dict, source: str) -> dict[str, list[np.ndarray]]:
    """Each layer's weights in Keras order. A nested model's are saved together under its name (all its
    trainable weights, then the others), so each goes back to the layer its name starts with."""
    weights: dict[str, list[np.ndarray]] = {}
    for layer in _raw(config):
        name = layer["config"]["name"]
        if not _is_model(layer):
            weights[name] = _layer_weights(group, name)
            continue
        leaves = _leaves(layer, f"{name}{SEP}", source)
        weights.update({key: [] for key in leaves.values()})
        for weight in (_text(n) for n in group[name].attrs.get("weight_names", [])) if name in group else []:
            weights[_owner(weight, leaves, source)].append(np.asarray(group[name][weight]))
    return weights


def read_keras_h5(path: str | Path) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """The Keras model config and each layer's weights (in Keras order) of a whole model saved as ``.h5``."""
    import h5py

    file = Path(path)
    try:
        h5 = h5py.File(file, "r")
    except OSError:
        raise DataError(f"{file}: not an HDF5 file (a Keras .h5 or .keras model is expected)") from None
    with h5:
        if "model_config" not in h5.attrs:
            raise DataError(
                f"{file}: no architecture in the file (weights only?); save the whole model with model.save"
            )
        config = _config_text(_text(h5.attrs["model_config"]), f"{file}: model_config")
        check_declared_arrays(h5, str(file))
        weights = _h5_weights(h5["model_weights"] if "model_weights" in h5 else h5, config, str(file))
    return config, weights


def _config_text(text: str, label: str) -> dict:
    if len(text) > CAPS["Keras config"]:
        raise too_large(label, len(text), CAPS["Keras config"], "Keras config")
    config = parse_json(text, label, "Keras config")
    if not isinstance(config, dict):
        raise DataError(f"{label}: a Keras config must be a JSON object, got {type(config).__name__}")
    return config


def check_declared_arrays(h5, source: str) -> None:
    """Refuse before reading when one weights array, or all together, declare more bytes than the caps (an
    HDF5 dataset's shape and type say what reading it allocates, whatever its compressed size)."""
    import h5py

    total = [0]

    def visit(name: str, item) -> None:
        if isinstance(item, h5py.Dataset):
            size = int(np.prod(item.shape, dtype=np.float64) * item.dtype.itemsize)
            if size > CAPS["Keras array"]:
                raise too_large(f"{source}: array {name[:100]!r}", size, CAPS["Keras array"], "Keras array")
            total[0] += size

    h5.visititems(visit)
    if total[0] > CAPS["Keras weights"]:
        raise too_large(f"{source}: its weights", total[0], CAPS["Keras weights"], "Keras weights")


def _snake_case(name: str) -> str:
    """Keras's ``naming.to_snake_case``: how a ``.keras`` file names a layer's entry after its class."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _vars(h5, where: str, name: str, source: str) -> list[np.ndarray]:
    group = h5.get(f"{where}/vars")
    if group is None:  # .keras files of Keras 2.13-2.15 call the layer list differently
        group = h5.get(f"{where.replace('layers', '_layer_checkpoint_dependencies')}/vars")
    if group is None:
        return []
    saved = group.attrs.get("name")  # newer Keras 3 versions record the layer's name
    if saved is not None and _text(saved) != name:
        raise DataError(f"{source}: {where} holds the weights of {_text(saved)!r}, not of layer {name!r}")
    return [np.asarray(group[k]) for k in sorted(group, key=int)]


def _zip_weights(h5, model: dict, where: str, prefix: str, source: str) -> dict[str, list[np.ndarray]]:
    """Keras 3 saves each layer's variables under ``layers/<class in snake case>[_<n>]/vars/<i>``, numbered
    per class in the order of ``model.layers`` (which leaves out a Sequential's InputLayer); a nested model's
    layers are under its own entry (keras/src/saving/saving_lib.py, ``_save_container_state``)."""
    weights: dict[str, list[np.ndarray]] = {}
    used: dict[str, int] = {}
    for layer in _raw(model):
        if model["class_name"] == "Sequential" and layer["class_name"] == "InputLayer":
            continue
        key = _snake_case(layer["class_name"])
        used[key] = used.get(key, -1) + 1
        entry = f"{where}layers/{key}" + (f"_{used[key]}" if used[key] else "")
        name = layer["config"]["name"]
        if _is_model(layer):
            weights.update(_zip_weights(h5, layer, entry + "/", f"{prefix}{name}{SEP}", source))
        else:
            weights[prefix + name] = _vars(h5, entry, name, source)
    return weights


def read_keras_zip(path: str | Path) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """The model config and each layer's weights of a Keras 3 ``.keras`` file (a zip)."""
    import h5py

    file = Path(path)
    with zipfile.ZipFile(file) as archive:
        names = set(archive.namelist())
        if "config.json" not in names:
            raise DataError(f"{file}: a zip without config.json, not a Keras .keras model")
        if "model.weights.h5" not in names:
            raise DataError(f"{file}: no model.weights.h5 in the .keras file (sharded weights are not supported)")
        config = _config_text(_zip_entry(archive, "config.json", "Keras config", file), f"{file}: config.json")
        buffer = io.BytesIO(_zip_entry(archive, "model.weights.h5", "Keras weights", file))
    try:
        h5 = h5py.File(buffer, "r")
    except OSError:
        raise DataError(f"{file}: model.weights.h5 is not an HDF5 file") from None
    with h5:
        check_declared_arrays(h5, str(file))
        return config, _zip_weights(h5, config, "", "", str(file))


def _zip_entry(archive: zipfile.ZipFile, name: str, what: str, file: Path) -> bytes | str:
    """One entry, its declared size checked against the cap of ``what`` before it is inflated (a read stops at
    the declared size); the config as text."""
    info, cap = archive.getinfo(name), CAPS[what]
    if info.file_size > cap:
        raise too_large(f"{file}: {name}", info.file_size, cap, what)
    try:
        raw = archive.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise DataError(f"{file}: {name} cannot be read ({type(exc).__name__})") from None
    if name.endswith(".json"):
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DataError(f"{file}: {name} is not UTF-8 text") from None
    return raw


def read_keras(path: str | Path) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """Config and weights of a whole Keras model, ``.keras`` or ``.h5``; unsupported layers are an error
    naming the layer, its class and the file. Weights are keyed by layer name (``outer::inner`` inside a
    nested model)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: Keras model file not found")
    with malformed_config(str(file)):
        config, weights = read_keras_zip(file) if zipfile.is_zipfile(file) else read_keras_h5(file)
        check_layers(config, str(file))
    return config, weights


@contextlib.contextmanager
def malformed_config(source: str) -> Iterator[None]:
    """A config missing a key or holding a value of the wrong type (a crafted or damaged file) is one line."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, IndexError, ValueError, RecursionError) as exc:
        detail = " ".join(str(exc).split())[:100]
        raise DataError(f"{source}: malformed Keras model config ({type(exc).__name__}: {detail})") from None


def _unsupported(layer: dict, source: str) -> str:
    kind, name = layer["class_name"], layer["config"].get("name", "?")
    head = f"{source}: Keras layer {name!r} of class {kind}"
    if kind == "KerasLayer":  # tensorflow_hub.KerasLayer: a SavedModel loaded by handle, outside the file
        return (
            f"{head} is a TensorFlow Hub layer ({layer['config'].get('handle', 'no handle')}) whose network is "
            "not in the file and needs TensorFlow; for BiT-M R50x1 use timm's resnetv2_50x1_bit as a cnn member "
            "(train-member cnn --backbone resnetv2_50x1_bit --weights LOCAL_FILE) and put that run in the committee"
        )
    if kind in ("Lambda", "TFOpLambda", "SlicingOpLambda"):
        return f"{head} holds Python or TensorFlow code, which is never run from a file; rebuild the model without it"
    return f"{head} is not supported; supported: {', '.join(LAYERS.names())}"


def check_layers(config: dict, source: str) -> None:
    """Every layer (nested models' included) has a converter, else a one-line error naming the first."""
    for layer in _raw(config):
        if _is_model(layer):
            check_layers(layer, source)
        elif layer["class_name"] != "InputLayer" and layer["class_name"] not in LAYERS:
            raise DataError(_unsupported(layer, source))


def _input_shape(config: dict) -> tuple[int, int, int]:
    first = _raw(config)[0]
    shape = first["config"].get("batch_input_shape") or first["config"].get("batch_shape")
    if shape is None and _is_model(first):
        return _input_shape(first)
    if shape is None and isinstance(config["config"], dict):
        shape = config["config"].get("build_input_shape")  # a Keras 3 Sequential built without an Input
    if not shape or len(shape) != 4 or any(s is None for s in shape[1:]):
        raise DataError(f"Keras model input {shape}: only fixed-size images (batch, height, width, channels)")
    return tuple(int(s) for s in shape[1:])


def _as_list(value) -> list:
    """Keras writes a single input as ``[name, 0, 0]`` and several as a list of those."""
    return [value] if value and isinstance(value[0], str) else value


def _ends(body: dict) -> tuple[list[str], list[str], list[str]]:
    """(input layers, output layers, output names) of a functional model's config."""
    inputs = [_history_names(i)[0] for i in _as_list(body["input_layers"])]
    refs = body["output_layers"]
    if isinstance(refs, dict):  # outputs given as a dict: its keys name them
        return inputs, [_history_names(r)[0] for r in refs.values()], list(refs)
    outputs = [_history_names(o)[0] for o in _as_list(refs)]
    return inputs, outputs, outputs


def parse_model(config: dict, weights: dict[str, list[np.ndarray]], prefix: str = "") -> KerasModel:
    """The layers of a Keras model config in run order, with their weights and inbound layers."""
    sequential = config["class_name"] == "Sequential"
    layers, previous = [], None
    for layer in _raw(config):
        name = layer["config"]["name"]
        if layer["config"].get("data_format", "channels_last") != "channels_last":
            raise DataError(f"Keras layer {name!r}: only channels_last models are supported")
        inbound = _inbound(layer, previous, sequential)
        nested = parse_model(layer, weights, f"{prefix}{name}{SEP}") if _is_model(layer) else None
        layers.append(
            KerasLayer(name, layer["class_name"], layer["config"], inbound, weights.get(prefix + name, []), nested)
        )
        previous = name
    if sequential:
        inputs, outputs = ["__input__"], [layers[-1].name]
        if layers[0].kind == "InputLayer":
            inputs = [layers[0].name]
        else:
            layers[0].inbound = inputs
        names = outputs
    else:
        inputs, outputs, names = _ends(config["config"])
    if len(inputs) != 1 or (prefix and len(outputs) != 1):
        where = f"nested model {config['config']['name']!r}" if prefix else "the model"
        raise DataError(
            f"Keras {where} has {len(inputs)} input(s) and {len(outputs)} output(s); one image input "
            "(and, nested, one output) is supported"
        )
    return KerasModel(layers, inputs, outputs, names, None if prefix else _input_shape(config))


def zero_weights(shapes: dict, source: str) -> dict[str, list[np.ndarray]]:
    """Zero arrays of the shapes a run's config records (filled from its state dict), their total size
    checked against the weights cap before anything is allocated."""
    sizes = [math.prod(int(d) for d in s) * 4 for v in shapes.values() for s in v]
    if any(d < 0 for v in shapes.values() for s in v for d in s) or sum(sizes) > CAPS["Keras weights"]:
        raise too_large(f"{source}: its weight shapes", sum(sizes), CAPS["Keras weights"], "Keras weights")
    return {k: [np.zeros([int(d) for d in s], np.float32) for s in v] for k, v in shapes.items()}


def architecture(config: dict, weights: dict[str, list[np.ndarray]]) -> dict:
    """What rebuilding the model needs without its file: the config and every weight's shape (JSON-able)."""
    return {"model_config": config, "weight_shapes": {k: [list(a.shape) for a in v] for k, v in weights.items() if v}}


# --- torch building blocks ----------------------------------------------------------------------------


class SamePad(nn.Module):
    """TensorFlow's 'same' padding: the output has ceil(size / stride) pixels; an odd total pads after."""

    def __init__(self, kernel, stride, dilation=(1, 1), value: float = 0.0):
        super().__init__()
        self.kernel, self.stride, self.dilation, self.value = tuple(kernel), tuple(stride), tuple(dilation), value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size, k, s, d in reversed(list(zip(x.shape[2:], self.kernel, self.stride, self.dilation))):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads, value=self.value)


class AnyRankBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over dim 1 of a tensor of any rank (after a conv or after a dense layer)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"batch norm needs (N, C, ...) input, got {tuple(input.shape)}")


class Lambda(nn.Module):
    """A parameter-free function as a module (activations, merges, pooling)."""

    def __init__(self, fn, name: str):
        super().__init__()
        self.fn, self.label = fn, name

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.fn(*xs)

    def extra_repr(self) -> str:
        return self.label


ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": F.relu,
    "relu6": F.relu6,
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": lambda x: (0.2 * x + 0.5).clamp(0, 1),
    "tanh": torch.tanh,
    "softmax": lambda x: x.softmax(1),  # channels are dim 1 here, the last axis in Keras
    "elu": F.elu,
    "selu": F.selu,
    "softplus": F.softplus,
    "swish": F.silu,
    "silu": F.silu,
    "gelu": F.gelu,
    "hard_swish": F.hardswish,
    "hard_silu": F.hardswish,
}


def activation(name) -> nn.Module:
    name = name if isinstance(name, str) else name.get("class_name", str(name))
    if name not in ACTIVATIONS:
        raise DataError(f"Keras activation {name!r} is not supported; supported: {', '.join(ACTIVATIONS)}")
    return Lambda(ACTIVATIONS[name], name)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _padding(cfg: dict, kernel, value: float = 0.0) -> nn.Module:
    if cfg["padding"] == "valid":
        return nn.Identity()
    if cfg["padding"] != "same":
        raise DataError(f"Keras layer {cfg['name']!r}: padding {cfg['padding']!r} is not supported")
    return SamePad(kernel, _pair(cfg.get("strides", 1)), _pair(cfg.get("dilation_rate", 1)), value)


def _conv_padding(cfg: dict, kernel) -> tuple[nn.Module, tuple[int, int] | int]:
    """(pad module, the conv's own padding). 'same' with stride 1 and an odd (dilated) kernel pads equally
    on both sides, which the convolution does itself without copying its input; else TensorFlow's pad."""
    dilation = _pair(cfg.get("dilation_rate", 1))
    if cfg["padding"] == "same" and _pair(cfg.get("strides", 1)) == (1, 1):
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if all(t % 2 == 0 for t in totals):
            return nn.Identity(), (totals[0] // 2, totals[1] // 2)
    return _padding(cfg, kernel), 0


def _param(array: np.ndarray) -> nn.Parameter:
    return nn.Parameter(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)))


def _depthwise(cfg: dict, kernel: np.ndarray, padding: tuple[int, int] | int = 0) -> nn.Conv2d:
    """Keras depthwise kernel (kh, kw, in, multiplier) -> grouped conv; output channel c * multiplier + m."""
    kh, kw, cin, mult = kernel.shape
    conv = skip_init(  # no random initialisation: every weight is set from the file
        nn.Conv2d,
        cin,
        cin * mult,
        (kh, kw),
        _pair(cfg["strides"]),
        padding,
        _pair(cfg.get("dilation_rate", 1)),
        groups=cin,
        bias=False,
    )
    conv.weight = _param(kernel.reshape(kh, kw, cin * mult).transpose(2, 0, 1)[:, None])
    return conv


def _conv(kernel: np.ndarray, bias: np.ndarray | None, cfg: dict, padding: tuple[int, int] | int = 0) -> nn.Conv2d:
    """Keras kernel (kh, kw, in, out) -> torch weight (out, in, kh, kw)."""
    kh, kw, cin, cout = kernel.shape
    conv = skip_init(
        nn.Conv2d,
        cin,
        cout,
        (kh, kw),
        _pair(cfg.get("strides", 1)),
        padding,
        _pair(cfg.get("dilation_rate", 1)),
        bias=bias is not None,
    )
    conv.weight = _param(kernel.transpose(3, 2, 0, 1))
    if bias is not None:
        conv.bias = _param(bias)
    return conv


# --- one converter per Keras layer class --------------------------------------------------------------


@LAYERS.register("Conv2D")
def conv2d(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    if cfg.get("groups", 1) != 1:
        raise DataError(f"Keras layer {cfg['name']!r}: grouped convolutions are not supported")
    kernel, bias = w[0], (w[1] if cfg["use_bias"] else None)
    pad, padding = _conv_padding(cfg, kernel.shape[:2])
    return nn.Sequential(pad, _conv(kernel, bias, cfg, padding), activation(cfg["activation"]))


@LAYERS.register("DepthwiseConv2D")
def depthwise_conv2d(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    pad, padding = _conv_padding(cfg, w[0].shape[:2])
    conv = _depthwise(cfg, w[0], padding)
    if cfg["use_bias"]:
        conv.bias = _param(w[1])
    return nn.Sequential(pad, conv, activation(cfg["activation"]))


@LAYERS.register("SeparableConv2D")
def separable_conv2d(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    """Depthwise conv, then a 1x1 pointwise conv (with the bias, if any), then the activation."""
    depthwise, pointwise = w[0], w[1]
    bias = w[2] if cfg["use_bias"] else None
    pad, padding = _conv_padding(cfg, depthwise.shape[:2])
    return nn.Sequential(
        pad, _depthwise(cfg, depthwise, padding), _conv(pointwise, bias, {}), activation(cfg["activation"])
    )


@LAYERS.register("BatchNormalization")
def batch_norm(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    """Weights come as [gamma] [beta] moving_mean moving_variance (gamma/beta absent when not learnt)."""
    if cfg.get("axis") not in (-1, 3, [-1], [3]):
        raise DataError(f"Keras layer {cfg['name']!r}: batch norm over axis {cfg.get('axis')} (not channels)")
    w = list(w)
    gamma = w.pop(0) if cfg.get("scale", True) else None
    beta = w.pop(0) if cfg.get("center", True) else None
    mean, var = w
    bn = AnyRankBatchNorm(len(mean), eps=cfg["epsilon"], momentum=1 - cfg.get("momentum", 0.99))
    bn.running_mean.copy_(torch.from_numpy(mean))
    bn.running_var.copy_(torch.from_numpy(var))
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma) if gamma is not None else torch.ones(len(mean)))
        bn.bias.copy_(torch.from_numpy(beta) if beta is not None else torch.zeros(len(mean)))
    bn.weight.requires_grad_(gamma is not None)
    bn.bias.requires_grad_(beta is not None)
    return bn


@LAYERS.register("Dense")
def dense(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    """Keras kernel (in, out) -> torch weight (out, in); applied along the channel dimension."""
    linear = skip_init(nn.Linear, *w[0].shape, bias=cfg["use_bias"])
    linear.weight = _param(w[0].T)
    if cfg["use_bias"]:
        linear.bias = _param(w[1])
    act = activation(cfg["activation"])
    return _Dense(linear, act)


class _Dense(nn.Module):
    def __init__(self, linear: nn.Linear, act: nn.Module):
        super().__init__()
        self.linear, self.act = linear, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(x.movedim(1, -1)).movedim(-1, 1))


@LAYERS.register("Activation")
def activation_layer(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    return activation(cfg["activation"])


@LAYERS.register("ReLU")
def relu_layer(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    if cfg.get("threshold", 0) or cfg.get("negative_slope", 0):
        raise DataError(f"Keras layer {cfg['name']!r}: ReLU with a threshold or slope is not supported")
    top = cfg.get("max_value")
    return Lambda((lambda x: F.relu(x).clamp(max=top)) if top is not None else F.relu, "relu")


@LAYERS.register("LeakyReLU")
def leaky_relu(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    slope = cfg.get("alpha", cfg.get("negative_slope", 0.3))
    return Lambda(lambda x: F.leaky_relu(x, slope), f"leaky_relu({slope})")


@LAYERS.register("Softmax")
def softmax_layer(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    return activation("softmax")


def _pool(cfg: dict, kind: str) -> nn.Module:
    size = _pair(cfg["pool_size"])
    stride = _pair(cfg.get("strides") or size)
    if kind == "max":
        pool = nn.MaxPool2d(size, stride)
        return nn.Sequential(_padding({**cfg, "strides": stride}, size, value=float("-inf")), pool)
    pad, pool = _padding({**cfg, "strides": stride}, size), nn.AvgPool2d(size, stride)
    # TensorFlow averages over the real pixels only: divide by the pooled share of real pixels.
    return Lambda(lambda x: pool(pad(x)) / pool(pad(torch.ones_like(x[:1, :1]))), "avg_pool")


@LAYERS.register("MaxPooling2D")
def max_pool(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    return _pool(cfg, "max")


@LAYERS.register("AveragePooling2D")
def avg_pool(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    return _pool(cfg, "avg")


@LAYERS.register("GlobalAveragePooling2D")
def global_avg_pool(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    keep = bool(cfg.get("keepdims", False))
    return Lambda(lambda x: x.mean((2, 3), keepdim=keep), "global_avg_pool")


@LAYERS.register("GlobalMaxPooling2D")
def global_max_pool(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    keep = bool(cfg.get("keepdims", False))
    return Lambda(lambda x: x.amax((2, 3), keepdim=keep), "global_max_pool")


@LAYERS.register("Flatten")
def flatten(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    """Flattened in Keras's (height, width, channels) order, so a following Dense layer's rows match."""
    return Lambda(lambda x: x.movedim(1, -1).flatten(1) if x.dim() > 2 else x, "flatten")


@LAYERS.register("ZeroPadding2D")
def zero_padding(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    pad = cfg["padding"]
    (top, bottom), (left, right) = [_pair(p) for p in (pad if isinstance(pad, list | tuple) else (pad, pad))]
    return Lambda(lambda x: F.pad(x, [left, right, top, bottom]), "zero_pad")


@LAYERS.register("Dropout")
@LAYERS.register("SpatialDropout2D")
def dropout(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    return nn.Dropout(cfg["rate"])


@LAYERS.register("GaussianNoise")
@LAYERS.register("GaussianDropout")
@LAYERS.register("AlphaDropout")
def noise(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    """Regularisers that only act in training: the identity at inference."""
    return nn.Identity()


def _keras_order(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(1, -1) if x.dim() > 2 else x


def _torch_order(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(-1, 1) if x.dim() > 2 else x


@LAYERS.register("Reshape")
def reshape(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    """Reshaped in Keras's channels-last order (e.g. pooled (N, C) -> (N, 1, 1, C) before squeeze-excitation)."""
    target = tuple(cfg["target_shape"])
    return Lambda(lambda x: _torch_order(_keras_order(x).reshape(len(x), *target)), f"reshape{target}")


def _channel_buffer(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, np.float32)).reshape(-1)


def _per_channel(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A scalar or one value per channel, shaped to broadcast over dim 1 of ``x``."""
    return values.view((1, -1) + (1,) * (x.dim() - 2))


class Rescale(nn.Module):
    """Keras ``Rescaling``: ``x * scale + offset``, each a scalar or one value per channel."""

    def __init__(self, scale, offset):
        super().__init__()
        self.register_buffer("scale", _channel_buffer(scale))
        self.register_buffer("offset", _channel_buffer(offset))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * _per_channel(self.scale, x) + _per_channel(self.offset, x)


class Normalize(nn.Module):
    """Keras ``Normalization``: ``(x - mean) / max(sqrt(variance), 1e-7)``, per channel."""

    def __init__(self, mean, variance):
        super().__init__()
        self.register_buffer("mean", _channel_buffer(mean))
        self.register_buffer("std", _channel_buffer(np.maximum(np.sqrt(np.asarray(variance, np.float32)), 1e-7)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - _per_channel(self.mean, x)) / _per_channel(self.std, x)


@LAYERS.register("Rescaling")
def rescaling(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    return Rescale(cfg["scale"], cfg.get("offset", 0.0))


@LAYERS.register("Normalization")
def normalization(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    """Mean and variance from the weights (adapted) or from the config (given); the count is not needed."""
    axis = cfg.get("axis", -1)
    if cfg.get("invert") or axis not in (-1, 3, [-1], [3], None):
        raise DataError(f"Keras layer {cfg['name']!r}: only channel normalisation (axis -1, not inverted) is supported")
    mean, variance = (w[0], w[1]) if w else (cfg["mean"], cfg["variance"])
    return Normalize(mean, variance)


def _merge(op, name: str) -> nn.Module:
    """Keras merge layers broadcast (squeeze-excitation multiplies (N, C, H, W) by (N, C, 1, 1))."""
    return Lambda(lambda *xs: functools.reduce(op, xs), name)


MERGES = {
    "Add": operator.add,
    "Subtract": operator.sub,
    "Multiply": operator.mul,
    "Maximum": torch.maximum,
    "Minimum": torch.minimum,
}
"""Keras merge layers folding their inputs with one operation."""


def _merge_layer(keras_name: str, op):
    def build(cfg: dict, w: list[np.ndarray]) -> nn.Module:
        return _merge(op, keras_name.lower())

    return build


for _name, _op in MERGES.items():
    LAYERS.register(_name)(_merge_layer(_name, _op))


@LAYERS.register("Average")
def average(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    return Lambda(lambda *xs: functools.reduce(operator.add, xs) / len(xs), "average")


@LAYERS.register("Concatenate")
def concatenate(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    if cfg.get("axis", -1) not in (-1, 3):
        raise DataError(f"Keras layer {cfg['name']!r}: concatenation over axis {cfg['axis']} (not channels)")
    return Lambda(lambda *xs: torch.cat(xs, 1), "concat")


# --- the graph ----------------------------------------------------------------------------------------


def _key(name: str) -> str:
    return name.replace(".", "_")


def _convert(layer: KerasLayer) -> nn.Module:
    """The layer's torch module; a config or weights it cannot use is a one-line error naming the layer."""
    try:
        return LAYERS.get(layer.kind)(layer.config, layer.weights)
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        detail = (str(exc).splitlines() or [""])[0][:100]
        raise DataError(
            f"Keras layer {layer.name!r} of class {layer.kind}: its config or weights do not fit "
            f"({type(exc).__name__}: {detail}; {len(layer.weights)} weight array(s) found)"
        ) from None


class KerasGraph(nn.Module):
    """The Keras model as torch: NCHW in, the model's output out (channels first where spatial); a model
    with several outputs returns them as a tuple, and ``heads`` names them."""

    def __init__(self, model: KerasModel):
        super().__init__()
        self.input_name, self.output_layers, self.output_names = model.inputs[0], model.outputs, model.output_names
        self.input_shape = model.input_shape
        self.inbound = {layer.name: layer.inbound for layer in model.layers if layer.kind != "InputLayer"}
        self.blocks = nn.ModuleDict()
        for layer in model.layers:
            if layer.model is not None:
                self.blocks[_key(layer.name)] = KerasGraph(layer.model)
            elif layer.kind != "InputLayer":
                self.blocks[_key(layer.name)] = _convert(layer)
        weighted = [layer.name for layer in model.layers if layer.weights or layer.model]
        self.classifier = weighted[-1] if weighted else model.outputs[0]
        self.activations = {n: final_activation(model, o) for n, o in zip(self.output_names, self.output_layers)}

    def run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's output by name, the input included."""
        values = {self.input_name: x}
        for name, sources in self.inbound.items():
            values[name] = self.blocks[_key(name)](*(values[s] for s in sources))
        return values

    def heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each output by its name."""
        values = self.run(x)
        return {name: values[layer] for name, layer in zip(self.output_names, self.output_layers)}

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        outputs = tuple(self.heads(x).values())
        return outputs[0] if len(outputs) == 1 else outputs

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The input of the model's last weighted layer (its classifier), averaged over space if spatial."""
        values = self.run(x)
        feats = torch.cat([values[s] for s in self.inbound[self.classifier]], 1)
        return feats.mean((2, 3)) if feats.dim() == 4 else feats


def final_activation(model: KerasModel, layer_name: str) -> str:
    """The activation an output ends in ('softmax', 'sigmoid', 'tanh', 'linear', ...)."""
    layer = next(layer for layer in model.layers if layer.name == layer_name)
    if layer.model is not None:
        return final_activation(layer.model, layer.model.outputs[0])
    if layer.kind == "Softmax":
        return "softmax"
    act = layer.config.get("activation", "linear")
    return act if isinstance(act, str) else act.get("class_name", "linear")


def build_graph(arch: dict, weights: dict[str, list[np.ndarray]] | None = None, source: str = "") -> KerasGraph:
    """The torch equivalent of a Keras model, in eval mode; without ``weights`` its weights are zeros
    (to be filled from a saved state dict). A model that does not run is a one-line error."""
    with malformed_config(source or "the Keras model"):
        check_layers(arch["model_config"], source or "the Keras model")
        if weights is None:
            weights = zero_weights(arch["weight_shapes"], source or "the Keras model")
    try:
        with malformed_config(source or "the Keras model"):
            graph = KerasGraph(parse_model(arch["model_config"], weights))
    except DataError as exc:  # name the file in errors about its layers
        raise DataError(f"{source}: {exc}" if source and not str(exc).startswith(source) else str(exc)) from None
    h, w, c = graph.input_shape
    meta = {k: torch.empty_like(v, device="meta") for k, v in graph.state_dict(keep_vars=True).items()}
    try:  # a dry run on the meta device: every shape checked and found, nothing computed
        with torch.no_grad():
            out = torch.func.functional_call(graph.eval(), meta, (torch.empty(1, c, h, w, device="meta"),))
    except (RuntimeError, ValueError, IndexError, KeyError) as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise DataError(f"{source or 'the'} Keras model does not run once rebuilt ({detail})") from None
    outs = out if isinstance(out, tuple) else (out,)
    graph.output_shapes = {name: tuple(value.shape[1:]) for name, value in zip(graph.output_names, outs)}
    return graph


def load_keras_model(path: str | Path) -> KerasGraph:
    """The torch equivalent of a whole Keras model file (``.h5`` or ``.keras``) with its weights, in eval mode."""
    config, weights = read_keras(path)
    return build_graph(architecture(config, weights), weights, str(path))
