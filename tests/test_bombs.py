"""A bomb per file kind the tool reads: each is refused with a one-line error before it is read whole, and the
peak memory of the process reading it (measured in a fresh interpreter with ``resource.getrusage``) grows by
far less than the file declares, under the kind's stated cap (README, Safety; ``ensemble.io.CAPS``)."""

import json
import os
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from ensemble.io import CAPS

ROOT = Path(__file__).resolve().parents[1]
GROWTH = 64 << 20
"""Most the peak memory may grow while a bomb is refused (each is refused on its declared size or cap)."""

PROBE = """
import resource, sys
{imports}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
try:
    {call}
    print("ACCEPTED")
except Exception as exc:
    print("ERROR", type(exc).__name__, str(exc).replace(chr(10), " "))
print("GROWTH", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before)
"""


def probe(imports: str, call: str) -> tuple[str, int]:
    code = PROBE.format(imports=imports, call=call)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=120
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, done.stderr
    return lines[0], int(lines[-1].split()[1])


def sparse(path: Path, size: int, head: bytes = b"") -> Path:
    with open(path, "wb") as file:
        file.write(head)
        file.truncate(size)  # a hole: the file takes no disk, but declares ``size`` bytes
    return path


def test_annotation_bomb(tmp_path):
    folder = tmp_path / "VA_Estimation_Challenge" / "Validation_Set"
    folder.mkdir(parents=True)
    sparse(folder / "v1.txt", 2 << 30, b"valence,arousal\n")
    line, growth = probe(
        "from ensemble.labels import read_label_folder; from ensemble.tasks import get_edition",
        f"read_label_folder({str(folder)!r}, 'va', get_edition(2022))",
    )
    assert line.startswith("ERROR DataError") and "over the annotation file cap" in line, line
    assert growth < min(GROWTH, CAPS["annotation file"])


def test_fusion_bomb_and_deep_json(tmp_path):
    sparse(tmp_path / "fusion.json", 2 << 30, b'{"generator": "affect-ens", "fuser": ')
    line, growth = probe(
        "from ensemble.pipeline import FittedFusion", f"FittedFusion.load({str(tmp_path)!r} + '/fusion.json')"
    )
    assert line.startswith("ERROR DataError") and "over the fusion file cap" in line, line
    assert growth < GROWTH
    (tmp_path / "deep.json").write_text("[" * 5_000_000 + "]" * 5_000_000)
    line, growth = probe(
        "from ensemble.pipeline import FittedFusion", f"FittedFusion.load({str(tmp_path)!r} + '/deep.json')"
    )
    assert line.startswith("ERROR DataError") and "nests deeper than 64 levels" in line, line
    assert growth < CAPS["fusion file"]


def test_csv_table_of_nul_bytes(tmp_path):
    """A CSV prediction table has no size cap (a real one may be large), but 2 GB of NUL bytes is no text:
    pandas parsed it whole (over 30 s and gigabytes); it is refused from its first block."""
    sparse(tmp_path / "m.csv", 2 << 30, b"video,frame,valence,arousal\n")
    line, growth = probe("from ensemble.contract import read_table", f"read_table({str(tmp_path)!r} + '/m.csv')")
    assert line.startswith("ERROR ContractError") and "m.csv: not a readable CSV file (NUL bytes" in line, line
    assert growth < GROWTH


def _patch_declared_size(path: Path, name: str, size: int) -> None:
    """Make the central directory declare ``size`` uncompressed bytes for entry ``name`` (what a bomb says)."""
    raw = bytearray(path.read_bytes())

    for start in (i for i in range(len(raw)) if raw.startswith(b"PK\x01\x02", i)):
        length = struct.unpack_from("<H", raw, start + 28)[0]
        if raw[start + 46 : start + 46 + length].decode() == name:
            struct.pack_into("<I", raw, start + 24, size)

    path.write_bytes(bytes(raw))


def test_keras_config_and_weights_bombs(tmp_path):
    bomb = tmp_path / "config_bomb.keras"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("config.json", "w") as entry:  # 64 MiB of spaces, about 64 KiB compressed
            for _ in range(64):
                entry.write(b" " * (1 << 20))
        z.writestr("model.weights.h5", b"")
    line, growth = probe("from members.keras_import.converter import read_keras", f"read_keras({str(bomb)!r})")
    assert line.startswith("ERROR DataError") and "over the Keras config cap" in line, line
    assert growth < GROWTH
    weights = tmp_path / "weights_bomb.keras"
    with zipfile.ZipFile(weights, "w", zipfile.ZIP_STORED) as z:
        z.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": []}}))
        z.writestr("model.weights.h5", b"x" * 1024)
    _patch_declared_size(weights, "model.weights.h5", 3 << 30)
    line, growth = probe("from members.keras_import.converter import read_keras", f"read_keras({str(weights)!r})")
    assert line.startswith("ERROR DataError") and "model.weights.h5" in line and "Keras weights" in line, line
    assert growth < GROWTH


def test_h5_dataset_declaring_gigabytes(tmp_path):
    import h5py

    model = tmp_path / "model.h5"
    with h5py.File(model, "w") as h5:
        h5.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": []}})
        h5.create_dataset(
            "model_weights/dense/kernel", shape=(800_000_000,), dtype="f4", chunks=True, compression="gzip"
        )
    assert model.stat().st_size < 1 << 20
    line, growth = probe("from members.keras_import.converter import read_keras", f"read_keras({str(model)!r})")
    assert line.startswith("ERROR DataError") and "over the Keras array cap" in line, line
    assert growth < GROWTH


def test_submission_zip_bomb(tmp_path):
    bomb = tmp_path / "submission.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("v1.txt", "valence,arousal\n0.1,0.2\n")
    _patch_declared_size(bomb, "v1.txt", 3 << 30)
    line, growth = probe(
        "from submissions.archive import open_submission",
        f"found = open_submission({str(bomb)!r}, 1 << 26, 1 << 30).__enter__(); print(found.problems[0][:120])",
    )
    assert "declares 3,221,225,472 bytes uncompressed" in line, line
    assert growth < GROWTH


def test_face_detector_model_bomb(tmp_path):
    """A 1 GiB --detector-model (issue 29): refused on its size before OpenCV is handed a byte."""
    bomb = sparse(tmp_path / "yunet.onnx", 1 << 30, b"\x08\x07")
    line, growth = probe(
        "from members.face.detectors import DetectorChoice, open_detector; from pathlib import Path",
        f"open_detector(DetectorChoice('yunet', Path({str(bomb)!r})))",
    )
    assert line.startswith("ERROR DataError") and "over the face detector model cap of 67,108,864 bytes" in line, line
    assert growth < GROWTH


@pytest.mark.parametrize("kind", ["annotation", "fusion"])
def test_a_fifo_is_refused_at_once(tmp_path, kind):
    """A FIFO named like the file hung the command forever, waiting for a writer."""
    folder = tmp_path / "VA_Estimation_Challenge" / "Validation_Set"
    folder.mkdir(parents=True)
    fifo = folder / "v1.txt" if kind == "annotation" else tmp_path / "fusion.json"
    os.mkfifo(fifo)
    call = (
        f"read_label_folder({str(folder)!r}, 'va', get_edition(2022))"
        if kind == "annotation"
        else f"FittedFusion.load({str(fifo)!r})"
    )
    imports = "from ensemble.labels import read_label_folder; from ensemble.tasks import get_edition; "
    imports += "from ensemble.pipeline import FittedFusion"
    line, _ = probe(imports, call)
    assert line.startswith("ERROR DataError") and "not a regular file" in line, line
