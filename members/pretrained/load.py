"""Loading a weights file into a backbone: the file's format, the backbone it was made for, every backbone
tensor placed (a classifier in the file is the only thing dropped, and said), or a one-line error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ensemble.errors import DataError
from members.pretrained.conventions import CONVENTIONS, timm_convention
from members.pretrained.files import read_weights
from members.pretrained.formats import BACKBONE_CONVENTIONS, FORMATS, HSEMOTION_BACKBONES, Format, Mapped, detect_format
from members.pretrained.networks import BACKBONES, build_backbone

DEFAULT_BACKBONE = "resnet18"


@dataclass
class Found:
    """A weights file read and mapped: its format, the backbone to build, its tensors in the backbone's names,
    and the classifier tensors it holds (dropped)."""

    source: Path
    format: Format
    backbone: str
    tensors: Mapped
    dropped: dict[str, torch.Tensor]


def _timm_heads(model: nn.Module) -> tuple[str, ...]:
    """The prefixes of a timm model's classifier (``pretrained_cfg['classifier']``), e.g. 'fc.', 'head.fc.'."""
    heads = (getattr(model, "pretrained_cfg", {}) or {}).get("classifier") or ()
    return tuple(f"{h}." for h in ((heads,) if isinstance(heads, str) else heads))


def _own(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a file must fill: the state dict without BatchNorm's step counters (loading sets them)."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def _fits(model: nn.Module, tensors: dict[str, torch.Tensor]) -> bool:
    own = _own(model)
    return all(k in tensors and tuple(tensors[k].shape) == tuple(v.shape) for k, v in own.items())


def guess_timm_backbone(tensors: dict[str, torch.Tensor]) -> str:
    """HSEmotion's EfficientNets by their shapes, else the default backbone."""
    if "conv_stem.weight" in tensors:
        for name in HSEMOTION_BACKBONES:
            if _fits(shapes_of(name), tensors):
                return name
    return DEFAULT_BACKBONE


def _choose_backbone(fmt: Format, made_for: str | None, given: str | None, source: Path) -> str:
    if made_for and given and given != made_for:
        raise DataError(
            f"{source}: holds {fmt.title}, made for backbone {made_for}, not {given}; "
            f"give --backbone {made_for} or leave --backbone out"
        )
    return given or made_for or DEFAULT_BACKBONE


def find_weights(path: str | Path, fmt: str | None = None, backbone: str | None = None) -> Found:
    """Read ``path``, tell (or take) its format and the backbone it was made for (``backbone`` when given), and
    map its tensors onto that backbone's names."""
    source = Path(path)
    contents = read_weights(source)
    format_ = FORMATS.get(fmt) if fmt else detect_format(contents, str(source))
    if contents.container not in format_.containers:
        raise DataError(f"{source}: is a {contents.container} file; --weights-format {format_.name} is not")
    tensors = {k: v for k, v in contents.tensors.items() if not k.endswith("num_batches_tracked")}
    made_for = format_.made_for(contents)
    if made_for is None and backbone is None and format_.name == "timm":
        made_for = guess_timm_backbone(tensors)
    name = _choose_backbone(format_, made_for, backbone, source)
    heads = _timm_heads(shapes_of(name)) if format_.name == "timm" and name not in BACKBONES else ()
    dropped = {k: v for k, v in tensors.items() if format_.is_head(k) or k.startswith(heads or ("\0",))}
    mapped = dict(_renamed(format_, {k: v for k, v in tensors.items() if k not in dropped}))
    return Found(source, format_, name, mapped, dropped)


def _renamed(format_: Format, tensors: dict[str, torch.Tensor]):
    for key, value in tensors.items():
        name, converted = format_.rename(key, value)
        yield name, (key, converted)


def shapes_of(name: str) -> nn.Module:
    """The backbone on the meta device: its names, shapes and timm config, without memory or initialisation."""
    with torch.device("meta"):
        return build_backbone(name)


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def place(model: nn.Module, found: Found, load: bool = True) -> int:
    """Copy every backbone tensor from the file (``load`` False: only check, e.g. on a meta-device model), or
    fail naming the first wrong one; returns the count."""
    own, where = _own(model), f"{found.source} ({found.format.name})"
    for key, value in own.items():
        if key in found.tensors and tuple(found.tensors[key][1].shape) != tuple(value.shape):
            file_key, tensor = found.tensors[key]
            named = repr(file_key) if file_key == key else f"{file_key!r} ({key})"
            raise DataError(
                f"{where}: tensor {named} is {_shape(tensor)} in the file but {_shape(value)} in backbone "
                f"{found.backbone}: the file is of another architecture"
            )
    missing = [k for k in own if k not in found.tensors]
    if missing:
        raise DataError(
            f"{where}: fills {len(own) - len(missing)} of the {len(own)} tensors of backbone {found.backbone}; "
            f"first missing: {missing[0]}"
        )
    extra = [file_key for key, (file_key, _) in found.tensors.items() if key not in own]
    if extra:
        raise DataError(
            f"{where}: {len(extra)} tensor(s) fit no place in backbone {found.backbone} (first: {extra[0]!r})"
        )
    if load:
        model.load_state_dict({k: t for k, (_, t) in found.tensors.items()}, strict=False)
    return len(own)


def convention(found: Found, model: nn.Module) -> dict:
    """The input convention (config.json's record) of the backbone as the file's makers trained it."""
    name = found.format.convention or BACKBONE_CONVENTIONS.get(found.backbone)
    conv = CONVENTIONS[name] if name else timm_convention(model, found.backbone)
    return conv.record()


def describe(found: Found, placed: int) -> str:
    """'VGGFace2 ResNet-50, ...: 265 of 265 backbone tensors placed; classifier (8631) dropped'."""
    said = f"{found.source}: {found.format.title} for backbone {found.backbone}: {placed} of {placed} tensors placed"
    if found.dropped:
        layer = next(iter(found.dropped)).split("::")[0].rsplit(".", 1)[0]
        classes = [t.shape[0] for t in found.dropped.values() if t.dim() == 1]
        said += f"; classifier {layer}{f' ({classes[0]} classes)' if classes else ''} dropped"
    return said
