"""Reading a weights file by its content, never running code from it: each container gives named arrays.

- torch files, zip or the legacy format of old torch (``torch.load(weights_only=True)``: tensors and plain
  containers only);
- ``.safetensors`` (safetensors: tensors only, by construction);
- plain pickles of name -> numpy array dicts, as Python 2 wrote them (cydonia999/VGGFace2-pytorch's
  ``resnet50_ft_weight.pkl``, read there with ``pickle.load(f, encoding='latin1')``): a restricted unpickler
  admits numpy's array reconstruction, dtypes and builtin containers, and refuses any other global by name;
- HDF5 files of Keras weights (keras-vggface's ``model.load_weights`` files), read with h5py.

A whole pickled model (``torch.save(model)``, as HSEmotion ships its emotion models) names its class as a
global; it is refused with the recipe that converts it once to a state dict where it was made.
"""

from __future__ import annotations

import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ensemble.errors import DataError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
TORCH_LEGACY = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")  # torch's pickled magic number
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy.core.multiarray", "scalar"): np.float32(0).__reduce__()[0],
    ("numpy._core.multiarray", "scalar"): np.float32(0).__reduce__()[0],
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("__builtin__", "dict"): dict,
}
"""The globals a pickled dict of numpy arrays needs (Python 2 and 3 names); nothing else is looked up."""
RECIPE = (
    "python -c \"import torch; m = torch.load('{file}', weights_only=False); "
    "torch.save(m.state_dict(), '{stem}_state.pt')\""
)


@dataclass
class Contents:
    """The named arrays of a weights file and the container they came in (torch, safetensors, pickle, keras)."""

    tensors: dict[str, torch.Tensor]
    container: str


class ArraysUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays only: any other global is refused by name, before it is imported."""

    def find_class(self, module: str, name: str):
        if (module, name) not in SAFE_GLOBALS:
            raise DataError(f"global {module}.{name}")
        return SAFE_GLOBALS[(module, name)]

    def persistent_load(self, pid):
        raise DataError("a persistent id (a torch storage)")


def read_pickle(file: Path) -> Contents:
    """A Python 2 or 3 pickle of a name -> numpy array dict (Python 2 strings read as latin-1)."""
    try:
        with open(file, "rb") as handle:
            data = ArraysUnpickler(handle, encoding="latin1").load()
    except DataError as exc:
        raise DataError(f"{file}: the pickle asks for {exc}; refused (only dicts of numpy arrays are read)") from None
    except Exception as exc:  # noqa: BLE001  a damaged pickle raises many types
        raise DataError(f"{file}: not a readable pickle ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, np.ndarray) and v.dtype.kind in "fiub" for v in data.values()
    ):
        raise DataError(f"{file}: the pickle holds no dict of name -> numpy array")
    return Contents({str(k): torch.from_numpy(np.array(v)) for k, v in data.items()}, "pickle")


def read_torch(file: Path) -> Contents:
    """A torch state dict (a ``state_dict`` entry if the file wraps one)."""
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        held = found.group(1) if found else "a Python object"
        raise DataError(
            f"{file}: holds {held} (a whole pickled model?), not weights; refused (loading it could run code); "
            f"convert it once where it was made: {RECIPE.format(file=file.name, stem=file.stem)}"
        ) from None
    except Exception as exc:  # noqa: BLE001  torch raises many types for a bad file
        raise DataError(f"{file}: not a torch weights file ({type(exc).__name__})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{file}: not a state dict (a dict of name -> tensor)")
    return Contents(dict(state), "torch")


def read_safetensors(file: Path) -> Contents:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return Contents(load_file(file), "safetensors")
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{file}: not a readable safetensors file ({str(exc)[:60]})") from None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_keras_weights(file: Path) -> Contents:
    """Keras 2 ``save_weights`` layout: root attribute ``layer_names``, each layer's group attribute
    ``weight_names``; keys are '<layer>::<weight name>' (a whole model's file: its ``model_weights`` group)."""
    import h5py

    try:
        with h5py.File(file, "r") as h5:
            group = h5["model_weights"] if "model_weights" in h5 else h5
            tensors = {}
            for layer in (_text(n) for n in group.attrs.get("layer_names", [])):
                for weight in (_text(n) for n in group[layer].attrs.get("weight_names", [])):
                    tensors[f"{layer}::{weight}"] = torch.from_numpy(np.array(group[layer][weight]))
    except (OSError, KeyError) as exc:
        raise DataError(f"{file}: not a readable Keras weights file ({str(exc)[:60]})") from None
    return Contents(tensors, "keras")


def _is_safetensors(head: bytes, size: int) -> bool:
    return len(head) > 9 and int.from_bytes(head[:8], "little") < size and head[8:9] == b"{"


def read_weights(path: str | Path) -> Contents:
    """The named tensors of a weights file, its container told by its first bytes (not its name)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: weights file not found")
    with open(file, "rb") as handle:
        head = handle.read(16)
    if head.startswith(HDF5_MAGIC):
        return read_keras_weights(file)
    if _is_safetensors(head, file.stat().st_size):
        return read_safetensors(file)
    if head.startswith(ZIP_MAGIC) or head.startswith(TORCH_LEGACY):
        return read_torch(file)
    if head.startswith(b"\x80"):
        return read_pickle(file)
    raise DataError(f"{file}: not a torch weights file, nor safetensors, a pickle of arrays or Keras HDF5 weights")
