"""Keras ``.h5`` models rebuilt as torch modules, read with h5py (no TensorFlow).

A functional or sequential model saved whole by Keras (``model.save('m.h5')``: the architecture in the
``model_config`` attribute, the weights under ``model_weights``) becomes a graph of torch layers run in
the Keras config's order. Each weight is converted from Keras's layout (HWIO kernels, channels last) to
torch's (OIHW, channels first). Keras's ``'same'`` padding is TensorFlow's: an odd total padding puts the
extra pixel after (bottom, right), which torch's symmetric padding cannot express, so it is applied
explicitly. Each supported Keras layer class is one converter registered in ``LAYERS``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ensemble.errors import DataError
from ensemble.registry import Registry

LAYERS: Registry = Registry("Keras layer")
"""Keras class name -> ``converter(config, weights) -> nn.Module`` (weights as numpy, in Keras order)."""


@dataclass
class KerasLayer:
    """One layer of the saved model: its class, config, the layers feeding it and its weights."""

    name: str
    kind: str
    config: dict
    inbound: list[str]
    weights: list[np.ndarray]


@dataclass
class KerasModel:
    """What a ``.h5`` file holds, in the order Keras runs it."""

    layers: list[KerasLayer]
    inputs: list[str]
    outputs: list[str]
    input_shape: tuple[int, int, int]  # (height, width, channels), channels last as Keras has it


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


def _layer_weights(group, name: str) -> list[np.ndarray]:
    if name not in group:
        return []
    names = [_text(n) for n in group[name].attrs.get("weight_names", [])]
    return [np.asarray(group[name][n]) for n in names]


def _input_shape(first: dict) -> tuple[int, int, int]:
    cfg = first["config"]
    shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
    if not shape or len(shape) != 4 or any(s is None for s in shape[1:]):
        raise DataError(f"Keras model input {shape}: only fixed-size images (batch, height, width, channels)")
    return tuple(int(s) for s in shape[1:])


def _as_list(value) -> list:
    """Keras writes a single input as ``[name, 0, 0]`` and several as a list of those."""
    return [value] if value and isinstance(value[0], str) else value


def read_keras_h5(path: str | Path) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """The Keras model config and each layer's weights (in Keras order) of a whole model saved as ``.h5``."""
    import h5py

    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: Keras model file not found")
    try:
        h5 = h5py.File(file, "r")
    except OSError:
        raise DataError(f"{file}: not an HDF5 file (a Keras .h5 model is expected)") from None
    with h5:
        if "model_config" not in h5.attrs:
            raise DataError(
                f"{file}: no architecture in the file (weights only?); save the whole model with model.save"
            )
        config = json.loads(_text(h5.attrs["model_config"]))
        group = h5["model_weights"] if "model_weights" in h5 else h5
        weights = {layer["config"]["name"]: _layer_weights(group, layer["config"]["name"]) for layer in _raw(config)}
    return config, weights


def _raw(config: dict) -> list[dict]:
    body = config["config"]
    return body["layers"] if isinstance(body, dict) else body


def parse_model(config: dict, weights: dict[str, list[np.ndarray]]) -> KerasModel:
    """The layers of a Keras model config in run order, with their weights and inbound layers."""
    sequential = config["class_name"] == "Sequential"
    raw = _raw(config)
    layers, previous = [], None
    for layer in raw:
        name = layer["config"]["name"]
        if layer["config"].get("data_format", "channels_last") != "channels_last":
            raise DataError(f"Keras layer {name!r}: only channels_last models are supported")
        inbound = _inbound(layer, previous, sequential)
        layers.append(KerasLayer(name, layer["class_name"], layer["config"], inbound, weights.get(name, [])))
        previous = name
    if sequential:
        inputs, outputs = ["__input__"], [layers[-1].name]
        if layers[0].kind == "InputLayer":
            inputs = [layers[0].name]
        else:
            layers[0].inbound = inputs
    else:
        body = config["config"]
        inputs = [_history_names(i)[0] for i in _as_list(body["input_layers"])]
        outputs = [_history_names(o)[0] for o in _as_list(body["output_layers"])]
    if len(inputs) != 1 or len(outputs) != 1:
        raise DataError(f"Keras models with one input and one output are supported, not {len(inputs)}/{len(outputs)}")
    return KerasModel(layers, inputs, outputs, _input_shape(raw[0]))


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


def _param(array: np.ndarray) -> nn.Parameter:
    return nn.Parameter(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)))


def _depthwise(cfg: dict, kernel: np.ndarray) -> nn.Conv2d:
    """Keras depthwise kernel (kh, kw, in, multiplier) -> grouped conv; output channel c * multiplier + m."""
    kh, kw, cin, mult = kernel.shape
    conv = nn.Conv2d(
        cin, cin * mult, (kh, kw), _pair(cfg["strides"]), 0, _pair(cfg.get("dilation_rate", 1)), groups=cin, bias=False
    )
    conv.weight = _param(kernel.reshape(kh, kw, cin * mult).transpose(2, 0, 1)[:, None])
    return conv


def _conv(kernel: np.ndarray, bias: np.ndarray | None, cfg: dict) -> nn.Conv2d:
    """Keras kernel (kh, kw, in, out) -> torch weight (out, in, kh, kw)."""
    kh, kw, cin, cout = kernel.shape
    conv = nn.Conv2d(
        cin, cout, (kh, kw), _pair(cfg.get("strides", 1)), 0, _pair(cfg.get("dilation_rate", 1)), bias=bias is not None
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
    return nn.Sequential(_padding(cfg, kernel.shape[:2]), _conv(kernel, bias, cfg), activation(cfg["activation"]))


@LAYERS.register("DepthwiseConv2D")
def depthwise_conv2d(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    conv = _depthwise(cfg, w[0])
    if cfg["use_bias"]:
        conv.bias = _param(w[1])
    return nn.Sequential(_padding(cfg, w[0].shape[:2]), conv, activation(cfg["activation"]))


@LAYERS.register("SeparableConv2D")
def separable_conv2d(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    """Depthwise conv, then a 1x1 pointwise conv (with the bias, if any), then the activation."""
    depthwise, pointwise = w[0], w[1]
    bias = w[2] if cfg["use_bias"] else None
    return nn.Sequential(
        _padding(cfg, depthwise.shape[:2]),
        _depthwise(cfg, depthwise),
        _conv(pointwise, bias, {}),
        activation(cfg["activation"]),
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
    linear = nn.Linear(*w[0].shape, bias=cfg["use_bias"])
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


@LAYERS.register("Add")
def add(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    return Lambda(lambda *xs: torch.stack(xs).sum(0), "add")


@LAYERS.register("Average")
def average(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    return Lambda(lambda *xs: torch.stack(xs).mean(0), "average")


@LAYERS.register("Multiply")
def multiply(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    return Lambda(lambda *xs: torch.stack(xs).prod(0), "multiply")


@LAYERS.register("Concatenate")
def concatenate(cfg: dict, w: list[np.ndarray]) -> nn.Module:
    if cfg.get("axis", -1) not in (-1, 3):
        raise DataError(f"Keras layer {cfg['name']!r}: concatenation over axis {cfg['axis']} (not channels)")
    return Lambda(lambda *xs: torch.cat(xs, 1), "concat")


# --- the graph ----------------------------------------------------------------------------------------


def _key(name: str) -> str:
    return name.replace(".", "_")


class KerasGraph(nn.Module):
    """The Keras model as torch: NCHW in, the model's output out (channels first where spatial)."""

    def __init__(self, model: KerasModel):
        super().__init__()
        self.input_name, self.output_name = model.inputs[0], model.outputs[0]
        self.input_shape = model.input_shape
        self.inbound = {layer.name: layer.inbound for layer in model.layers if layer.kind != "InputLayer"}
        self.blocks = nn.ModuleDict()
        for layer in model.layers:
            if layer.kind == "InputLayer":
                continue
            if layer.kind not in LAYERS:
                raise DataError(
                    f"Keras layer {layer.name!r} of class {layer.kind} is not supported; "
                    f"supported: {', '.join(LAYERS.names())}"
                )
            self.blocks[_key(layer.name)] = LAYERS.get(layer.kind)(layer.config, layer.weights)
        self.classifier = next(layer.name for layer in reversed(model.layers) if layer.weights)
        self.ends_in_softmax = _ends_in_softmax(model)

    def run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's output by name, the input included."""
        values = {self.input_name: x}
        for name, sources in self.inbound.items():
            values[name] = self.blocks[_key(name)](*(values[s] for s in sources))
        return values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[self.output_name]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The input of the model's last weighted layer (its classifier), averaged over space if spatial."""
        values = self.run(x)
        feats = torch.cat([values[s] for s in self.inbound[self.classifier]], 1)
        return feats.mean((2, 3)) if feats.dim() == 4 else feats


def _ends_in_softmax(model: KerasModel) -> bool:
    """Whether the model's output layer is a softmax (its output already a probability distribution)."""
    last = next(layer for layer in model.layers if layer.name == model.outputs[0])
    return last.kind == "Softmax" or last.config.get("activation") == "softmax"


def build_graph(arch: dict, weights: dict[str, list[np.ndarray]] | None = None) -> KerasGraph:
    """The torch equivalent of a Keras model, in eval mode; without ``weights`` its weights are zeros
    (to be filled from a saved state dict). A model that does not run is a one-line error."""
    if weights is None:
        weights = {k: [np.zeros(s, np.float32) for s in shapes] for k, shapes in arch["weight_shapes"].items()}
    graph = KerasGraph(parse_model(arch["model_config"], weights))
    h, w, c = graph.input_shape
    try:
        with torch.no_grad():
            graph.output_shape = tuple(graph.eval()(torch.zeros(1, c, h, w)).shape[1:])
    except (RuntimeError, ValueError, IndexError) as exc:
        raise DataError(f"the rebuilt Keras model does not run ({str(exc).splitlines()[0][:120]})") from None
    return graph


def load_keras_model(path: str | Path) -> KerasGraph:
    """The torch equivalent of a whole Keras ``.h5`` model with its weights, in eval mode."""
    config, weights = read_keras_h5(path)
    return build_graph(architecture(config, weights), weights)
