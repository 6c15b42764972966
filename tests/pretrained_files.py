"""Face-pretrained weight files written in exactly the layout teams download, with random weights, and the
independent reference forwards they are checked against (each written from the public definition).

Layouts: fanq15/caffe_to_torch_to_pytorch's VGG_Face_torch.pth (an nn.Sequential state dict in old torch's
serialisation), cydonia999/VGGFace2-pytorch's resnet50_ft_weight.pkl (a Python 2 protocol-2 pickle of a
name -> numpy array dict, torchvision names), albanie's resnet50_ft_dag.pth (caffe names, 1x1-conv
classifier), rcmalli/keras-vggface's .h5 weights (Keras 2 ``save_weights`` layout, layer names with '/'),
HSEmotion's state_vggface2_enet0_new.pt (a timm tf_efficientnet_b0 state dict).
"""

from __future__ import annotations

import collections
import pickle
import struct
import warnings

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

VGG_CONVS = [(b, i, w) for b, ws in enumerate(((64,) * 2, (128,) * 2, (256,) * 3, (512,) * 3, (512,) * 3), 1)
             for i, w in enumerate(ws, 1)]  # fmt: skip
RESNET = ((2, 3, 64), (3, 4, 128), (4, 6, 256), (5, 3, 512))
VGGFACE1_BGR = (93.5940, 104.7624, 129.1863)  # VGG-Face's average face, BGR (keras-vggface utils.py version 1)
VGGFACE2_BGR = (91.4953, 103.8827, 131.0912)  # cydonia999 datasets/vgg_face2.py mean_bgr
VGGFACE2_RGB = (131.0912, 103.8827, 91.4953)  # albanie resnet50_ft_dag.py meta['mean'] (RGB input)


def he(rng, shape, fan_in) -> np.ndarray:
    """He-normal weights, drawn in float32 (a third faster than float64 then a copy: VGG-Face has 138M)."""
    weights = rng.standard_normal(shape, dtype=np.float32)
    weights *= np.float32(np.sqrt(2.0 / fan_in))
    return weights


def bn_arrays(rng, c) -> list[np.ndarray]:
    """gamma, beta, running mean, running var: random but keeping activations of order one."""
    f = np.float32
    return [rng.uniform(0.3, 0.7, c).astype(f), rng.normal(0, 0.1, c).astype(f), rng.normal(0, 0.1, c).astype(f),
            rng.uniform(0.5, 1.5, c).astype(f)]  # fmt: skip


def caffe_input(images: torch.Tensor, mean, bgr: bool) -> torch.Tensor:
    """Our (x - 0.5) / 0.5 RGB images as a caffe model takes them: 0-255, channel order, minus the mean."""
    x = (images * 0.5 + 0.5) * 255.0
    x = x.flip(1) if bgr else x
    return x - torch.tensor(mean).view(1, 3, 1, 1)


# --- fanq15 VGG_Face_torch.pth --------------------------------------------------------------------------------


def vgg_face_sequential() -> nn.Sequential:
    """VGG_Face_torch.py as convert_torch.py writes it: indices 0..39, Linear layers in Sequential(Lambda, Linear)."""
    layers, c = [], 3
    for b, i, w in VGG_CONVS:
        layers += [nn.Conv2d(c, w, 3, 1, 1), nn.ReLU()]
        c = w
        if i == (2 if b < 3 else 3):
            layers.append(nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True))
    layers.append(nn.Flatten())  # 31: View
    for cin, cout in ((25088, 4096), (4096, 4096), (4096, 2622)):
        layers += [nn.Sequential(nn.Flatten(), nn.Linear(cin, cout)), nn.ReLU(), nn.Dropout(0.5)]
    return nn.Sequential(*layers[:-2], nn.Softmax(1))


def write_vgg_face_torch(path, rng) -> nn.Sequential:
    """The file and the reference network holding its weights (built on the meta device: its own random
    initialisation of 138M weights would be overwritten)."""
    with torch.device("meta"):
        net = vgg_face_sequential()
    state = collections.OrderedDict()
    for key, value in net.state_dict().items():
        fan_in = value[0].numel() if value.dim() > 1 else 1
        state[key] = torch.from_numpy(he(rng, tuple(value.shape), fan_in) if value.dim() > 1 else
                                      rng.normal(0, 0.01, tuple(value.shape)).astype(np.float32))  # fmt: skip
    torch.save(state, path, _use_new_zipfile_serialization=False)  # old torch's serialisation
    net.load_state_dict(state, assign=True)
    return net.eval()


def vgg_face_reference(net: nn.Sequential, images: torch.Tensor) -> torch.Tensor:
    """fc7 after its ReLU (index 36): the VGG-Face descriptor, on 224-px BGR images minus the average face."""
    return net[:37](caffe_input(images, VGGFACE1_BGR, bgr=True))


# --- ResNet-50 state dicts: cydonia999 (torchvision names) and albanie (caffe names) ------------------------


def resnet_caffe_arrays(rng, classes=8631) -> dict[str, np.ndarray]:
    """The caffe-named arrays of albanie's resnet50_ft_dag (conv, conv_bn, ..., classifier as a 1x1 conv)."""
    out: dict[str, np.ndarray] = {}

    def unit(name, cin, cout, k):
        out[f"{name}.weight"] = he(rng, (cout, cin, k, k), cin * k * k)
        g, b, m, v = bn_arrays(rng, cout)
        out.update(
            {f"{name}_bn.weight": g, f"{name}_bn.bias": b, f"{name}_bn.running_mean": m, f"{name}_bn.running_var": v}
        )

    unit("conv1_7x7_s2", 3, 64, 7)
    c = 64
    for stage, count, w in RESNET:
        for block in range(1, count + 1):
            n = f"conv{stage}_{block}"
            unit(f"{n}_1x1_reduce", c, w, 1), unit(f"{n}_3x3", w, w, 3), unit(f"{n}_1x1_increase", w, 4 * w, 1)
            if block == 1:
                unit(f"{n}_1x1_proj", c, 4 * w, 1)
            c = 4 * w
    out["classifier.weight"] = he(rng, (classes, 2048, 1, 1), 2048)
    out["classifier.bias"] = np.zeros(classes, np.float32)
    return out


def dag_reference(w: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """albanie's resnet50_ft_dag forward, functionally from its layer list: RGB minus meta['mean'], convs
    named conv{s}_{b}_1x1_reduce/_3x3/_1x1_increase/_1x1_proj with strides in the 1x1 convs, ceil max-pool."""

    def unit(x, name, stride=1, pad=0):
        x = F.conv2d(x, w[f"{name}.weight"], stride=stride, padding=pad)
        bn = [w[f"{name}_bn.{k}"] for k in ("running_mean", "running_var", "weight", "bias")]
        return F.batch_norm(x, *bn, training=False, eps=1e-5)

    x = F.relu(unit(caffe_input(images, VGGFACE2_RGB, bgr=False), "conv1_7x7_s2", 2, 3))
    x = F.max_pool2d(x, 3, 2, 0, ceil_mode=True)
    for stage, count, _ in RESNET:
        for block in range(1, count + 1):
            n, s = f"conv{stage}_{block}", 2 if block == 1 and stage > 2 else 1
            y = F.relu(unit(x, f"{n}_1x1_reduce", s))
            y = F.relu(unit(y, f"{n}_3x3", 1, 1))
            y = unit(y, f"{n}_1x1_increase")
            x = F.relu(y + (unit(x, f"{n}_1x1_proj", s) if block == 1 else x))
    return x.mean((2, 3))  # pool5_7x7_s1 at 224 px


class Bottleneck(nn.Module):
    """cydonia999 models/resnet.py Bottleneck: the stride in conv1 (1x1)."""

    def __init__(self, cin, planes, stride, downsample):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class Cydonia999ResNet50(nn.Module):
    """cydonia999 models/resnet.py ResNet(Bottleneck, [3, 4, 6, 3]): ceil-mode max-pool without padding."""

    def __init__(self, classes=8631):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 0, ceil_mode=True)
        c = 64
        for i, (_, count, planes) in enumerate(RESNET, 1):
            stride = 1 if i == 1 else 2
            down = nn.Sequential(nn.Conv2d(c, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
            blocks = [Bottleneck(c, planes, stride, down)] + [Bottleneck(planes * 4, planes, 1, None)
                                                              for _ in range(count - 1)]  # fmt: skip
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            c = planes * 4
        self.fc = nn.Linear(2048, classes)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean((2, 3))  # avgpool(7) at 224 px, include_top=False


def cydonia999_arrays(rng, net: nn.Module | None = None) -> dict[str, np.ndarray]:
    """Random arrays under cydonia999's names (no num_batches_tracked: the caffe conversion has none)."""
    net = net or Cydonia999ResNet50()
    out = {}
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        shape = tuple(value.shape)
        if value.dim() > 1:
            out[key] = he(rng, shape, value[0].numel())
        elif key.endswith("running_var"):
            out[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif key.endswith("weight"):
            out[key] = rng.uniform(0.3, 0.7, shape).astype(np.float32)
        else:
            out[key] = rng.normal(0, 0.1, shape).astype(np.float32)
    return out


# --- a Python 2 protocol-2 pickle, as numpy under Python 2 wrote it ------------------------------------------


def _s(data: bytes) -> bytes:
    """A Python 2 str: SHORT_BINSTRING or BINSTRING (read back as latin-1 text)."""
    return b"U" + bytes([len(data)]) + data if len(data) < 256 else b"T" + struct.pack("<i", len(data)) + data


def _i(n: int) -> bytes:
    return (
        b"K" + bytes([n])
        if 0 <= n < 256
        else b"M" + struct.pack("<H", n)
        if 0 <= n < 65536
        else b"J" + struct.pack("<i", n)
    )


def py2_array(a: np.ndarray) -> bytes:
    """ndarray.__reduce__ of numpy under Python 2: _reconstruct(ndarray, (0,), 'b') then BUILD with
    (1, shape, dtype('f4') with state (3, '<', None, None, None, -1, -1, 0), False, raw bytes as a str)."""
    a = np.ascontiguousarray(a, dtype="<f4")
    new = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _i(0) + b"\x85" + _s(b"b") + b"\x87R"
    dtype = (
        b"cnumpy\ndtype\n"
        + _s(b"f4")
        + _i(0)
        + _i(1)
        + b"\x87R("
        + _i(3)
        + _s(b"<")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff"
        + _i(0)
        + b"tb"
    )
    state = b"(" + _i(1) + b"(" + b"".join(_i(d) for d in a.shape) + b"t" + dtype + b"\x89" + _s(a.tobytes()) + b"tb"
    return new + state


def py2_pickle(arrays: dict[str, np.ndarray]) -> bytes:
    """A dict of arrays pickled with protocol 2 the way Python 2 did (str keys, str data)."""
    body = b"".join(_s(k.encode()) + py2_array(v) for k, v in arrays.items())
    return b"\x80\x02}q\x00(" + body + b"u."


def read_py2_pickle(path) -> dict[str, np.ndarray]:
    """As cydonia999's utils.load_state_dict reads it: pickle.load(f, encoding='latin1')."""
    with open(path, "rb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy 2 reaches numpy.core through a shim
        return pickle.load(f, encoding="latin1")


# --- keras-vggface .h5 weights: Keras 3 builds the model, Keras 2's save_weights layout holds the numbers ---


def write_keras2_weights(path, layers: list[tuple[str, list[tuple[str, np.ndarray]]]]) -> None:
    """Keras 2 ``save_weights`` layout: root attributes layer_names, backend, keras_version; each layer a group
    (nested where its name has '/') with attribute weight_names ('conv1/7x7_s2/kernel:0') and the arrays."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n, _ in layers])
        f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", b"2.2.4"
        for name, weights in layers:
            group = f.create_group(name)
            group.attrs["weight_names"] = np.array([w.encode() for w, _ in weights])
            for weight, value in weights:
                group.create_dataset(weight, data=value)


KERAS_WEIGHTS = {"Conv2D": ("kernel", "bias"), "Dense": ("kernel", "bias"),
                 "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance")}  # fmt: skip


def keras_layers_with_random_weights(model, rng, real_name) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
    """Set random weights on every Keras layer and return them under keras-vggface's real layer names (Keras 3
    refuses '/' in names, so the model uses '_' and ``real_name`` maps back)."""
    out = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in KERAS_WEIGHTS:
            continue
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        if kind == "BatchNormalization":
            values = bn_arrays(rng, shapes[0][0])
        else:
            fan_in = int(np.prod(shapes[0][:-1]))
            values = [he(rng, shapes[0], fan_in)] + [rng.normal(0, 0.01, s).astype(np.float32) for s in shapes[1:]]
        layer.set_weights(values)
        name = real_name(layer.name)
        out.append((name, [(f"{name}/{w}:0", v) for w, v in zip(KERAS_WEIGHTS[kind], values)]))
    return out


def keras_vgg16(size: int):
    """keras_vggface/models.py VGG16 up to fc7's ReLU (the descriptor); fc8 is written to the file apart."""
    import keras
    from keras import layers

    x = inputs = keras.Input((size, size, 3))
    for b, i, w in VGG_CONVS:
        x = layers.Conv2D(w, 3, activation="relu", padding="same", name=f"conv{b}_{i}")(x)
        if i == (2 if b < 3 else 3):
            x = layers.MaxPooling2D(2, 2, name=f"pool{b}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(4096, activation="relu", name="fc6")(x)
    x = layers.Dense(4096, activation="relu", name="fc7")(x)
    return keras.Model(inputs, x, name="vggface_vgg16")


def keras_resnet50(size: int, se: bool):
    """keras_vggface/models.py RESNET50 (se False) or SENET50 (se True), include_top=False with the final
    AveragePooling2D((7, 7)) as a global average (the same at 224 px); names use '_' where the real have '/'."""
    import keras
    from keras import layers

    eps = {"epsilon": 1e-4} if se else {}  # RESNET50 keeps Keras's default BatchNormalization epsilon (1e-3)

    def conv_bn(x, filters, k, name, strides=1, padding="valid"):
        x = layers.Conv2D(filters, k, strides=strides, padding=padding, use_bias=False, name=name)(x)
        return layers.BatchNormalization(axis=3, name=f"{name}_bn", **eps)(x)

    def se_block(x, name, c):  # senet_se_block, compress_rate 16, bias=True
        s = layers.Reshape((1, 1, c))(layers.GlobalAveragePooling2D()(x))
        s = layers.Activation("relu")(layers.Conv2D(c // 16, 1, name=f"{name}_1x1_down")(s))
        return layers.multiply([x, layers.Activation("sigmoid")(layers.Conv2D(c, 1, name=f"{name}_1x1_up")(s))])

    inputs = keras.Input((size, size, 3))
    x = layers.Activation("relu")(conv_bn(inputs, 64, 7, "conv1_7x7_s2", 2, "same"))
    x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    for stage, count, w in RESNET:
        for block in range(1, count + 1):
            n, s = f"conv{stage}_{block}", (1 if stage == 2 else 2) if block == 1 else 1
            y = layers.Activation("relu")(conv_bn(x, w, 1, f"{n}_1x1_reduce", s))
            y = layers.Activation("relu")(conv_bn(y, w, 3, f"{n}_3x3", padding="same"))
            y = conv_bn(y, 4 * w, 1, f"{n}_1x1_increase")
            y = se_block(y, n, 4 * w) if se else y
            x = layers.Activation("relu")(
                layers.add([y, conv_bn(x, 4 * w, 1, f"{n}_1x1_proj", s) if block == 1 else x])
            )
    return keras.Model(inputs, layers.GlobalAveragePooling2D()(x))


def keras_real_name(name: str) -> str:
    """'conv1_7x7_s2' -> 'conv1/7x7_s2', 'conv2_1_1x1_reduce_bn' -> 'conv2_1_1x1_reduce/bn' (keras-vggface's)."""
    name = name.replace("conv1_7x7_s2", "conv1/7x7_s2")
    return name[:-3] + "/bn" if name.endswith("_bn") else name


def keras_forward(model, images: torch.Tensor, mean) -> torch.Tensor:
    """keras-vggface preprocess_input (RGB -> BGR, minus the version's mean) then the Keras model, NHWC."""
    x = caffe_input(images, mean, bgr=True).permute(0, 2, 3, 1).numpy()
    return torch.from_numpy(np.asarray(model(x, training=False).detach().cpu()))
