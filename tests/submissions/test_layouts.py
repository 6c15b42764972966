"""Every edition 2020-2025 and every track it offers, written from a hand-built fused table through the
organisers' kind of frame source, compared byte for byte with expected text written out by hand here (not
taken from the writer's tables)."""

import zipfile

import pandas as pd
import pytest

from ensemble.contract import PredictionTable, TableMeta
from ensemble.frames import read_frame_source
from submissions import get_format, validate_submission, write_submission

EXPR_7 = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise"
EXPR_8 = EXPR_7 + ",Other"
AU_8 = "AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25"
AU_12 = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"

# The fused table: v1 frames 1 and 3, v2 frame 1 (v1 frame 2 and v2 frame 2 have no face: filled from the
# previous frame). Per row: class index, valence, arousal, bits of the 12 AUs, bits of the 8 AUs of 2020.
ROWS = {
    ("v1", 1): (4, 0.5, -0.25, "100000000000", "10000000"),
    ("v1", 3): (0, -0.1, 0.3, "000000000001", "00000001"),
    ("v2", 1): (7, 1.0, -1.0, "010101010101", "01010101"),
}


def table_for(year: int) -> PredictionTable:
    """The rows as probabilities (0.6 on the class, AU probabilities 0.8 or 0.3) in ``year``'s label set."""
    classes = (EXPR_7 if year < 2022 else EXPR_8).split(",")
    aus = (AU_8 if year == 2020 else AU_12).split(",")
    data: dict[str, list] = {"video": [], "frame": []}
    for (video, frame), (cls, valence, arousal, bits12, bits8) in ROWS.items():
        cls = min(cls, len(classes) - 1)  # 7-class editions: v2 is 'Surprise' (6)
        bits = bits12 if len(aus) == 12 else bits8
        data["video"].append(video)
        data["frame"].append(frame)
        for j, name in enumerate(classes):
            data.setdefault(f"expr_{name.lower()}", []).append(0.6 if j == cls else 0.4 / (len(classes) - 1))
        data.setdefault("valence", []).append(valence)
        data.setdefault("arousal", []).append(arousal)
        for j, au in enumerate(aus):
            data.setdefault(au.lower(), []).append(0.8 if bits[j] == "1" else 0.3)
    return PredictionTable(pd.DataFrame(data), TableMeta(("expr", "va", "au"), year, "fused", "test"))


V1_VA = "0.500000,-0.250000\n0.500000,-0.250000\n-0.100000,0.300000\n"
V2_VA = "1.000000,-1.000000\n1.000000,-1.000000\n"
V1_AU12 = "1,0,0,0,0,0,0,0,0,0,0,0\n1,0,0,0,0,0,0,0,0,0,0,0\n0,0,0,0,0,0,0,0,0,0,0,1\n"
V2_AU12 = "0,1,0,1,0,1,0,1,0,1,0,1\n0,1,0,1,0,1,0,1,0,1,0,1\n"
PER_VIDEO_8 = {
    "expr": {"v1.txt": f"{EXPR_8}\n4\n4\n0\n", "v2.txt": f"{EXPR_8}\n7\n7\n"},
    "va": {"v1.txt": f"valence,arousal\n{V1_VA}", "v2.txt": f"valence,arousal\n{V2_VA}"},
    "au": {"v1.txt": f"{AU_12}\n{V1_AU12}", "v2.txt": f"{AU_12}\n{V2_AU12}"},
}
# Videos in the order of the video-name list (v2 first), frames in the example file's order.
SINGLE_FILE = {
    "expr": {
        "predictions.txt": f"image_location,{EXPR_8}\n"
        "v2/00001.jpg,7\nv2/00002.jpg,7\nv1/00001.jpg,4\nv1/00002.jpg,4\nv1/00003.jpg,0\n"
    },
    "va": {
        "predictions.txt": "image_location,valence,arousal\n"
        "v2/00001.jpg,1.000000,-1.000000\nv2/00002.jpg,1.000000,-1.000000\n"
        "v1/00001.jpg,0.500000,-0.250000\nv1/00002.jpg,0.500000,-0.250000\nv1/00003.jpg,-0.100000,0.300000\n"
    },
    "au": {
        "predictions.txt": f"image_location,{AU_12}\n"
        "v2/00001.jpg,0,1,0,1,0,1,0,1,0,1,0,1\nv2/00002.jpg,0,1,0,1,0,1,0,1,0,1,0,1\n"
        "v1/00001.jpg,1,0,0,0,0,0,0,0,0,0,0,0\nv1/00002.jpg,1,0,0,0,0,0,0,0,0,0,0,0\n"
        "v1/00003.jpg,0,0,0,0,0,0,0,0,0,0,0,1\n"
    },
}
# The multi-task list is shuffled and skips v1 frame 2: rows keep exactly its order.
MTL = {
    "predictions.txt": "image,valence,arousal,expression,aus\n"
    "v2/00002.jpg,1.000000,-1.000000,7,0,1,0,1,0,1,0,1,0,1,0,1\n"
    "v1/00003.jpg,-0.100000,0.300000,0,0,0,0,0,0,0,0,0,0,0,0,1\n"
    "v1/00001.jpg,0.500000,-0.250000,4,1,0,0,0,0,0,0,0,0,0,0,0\n"
    "v2/00001.jpg,1.000000,-1.000000,7,0,1,0,1,0,1,0,1,0,1,0,1\n"
}
EXPECTED = {
    (2020, "expr"): {"v1.txt": f"{EXPR_7}\n4\n4\n0\n", "v2.txt": f"{EXPR_7}\n6\n6\n"},
    (2020, "va"): PER_VIDEO_8["va"],
    (2020, "au"): {
        "v1.txt": f"{AU_8}\n1,0,0,0,0,0,0,0\n1,0,0,0,0,0,0,0\n0,0,0,0,0,0,0,1\n",
        "v2.txt": f"{AU_8}\n0,1,0,1,0,1,0,1\n0,1,0,1,0,1,0,1\n",
    },
    (2021, "expr"): {"v1.txt": f"{EXPR_7}\n4\n4\n0\n", "v2.txt": f"{EXPR_7}\n6\n6\n"},
    (2021, "va"): PER_VIDEO_8["va"],
    (2021, "au"): PER_VIDEO_8["au"],
    **{(2022, track): files for track, files in PER_VIDEO_8.items()},
    (2022, "mtl"): MTL,
    **{(year, track): files for year in (2023, 2024, 2025) for track, files in SINGLE_FILE.items()},
    (2024, "mtl"): MTL,
}


@pytest.fixture
def organisers(tmp_path):
    """The organisers' kinds of frame source: a manifest (per-video years), an example file and a video-name
    list (2023 on), a shuffled multi-task image list."""
    (tmp_path / "frames.csv").write_text("video,frames\nv1,3\nv2,2\n")
    (tmp_path / "names.txt").write_text("v2\nv1\n")
    (tmp_path / "mtl.txt").write_text("image\nv2/00002.jpg\nv1/00003.jpg\nv1/00001.jpg\nv2/00001.jpg\n")
    for name, header in (("expr", EXPR_8), ("va", "valence,arousal"), ("au", AU_12)):
        rows = "".join(f"{v}/{f:05d}.jpg,\n" for v, n in (("v1", 3), ("v2", 2)) for f in range(1, n + 1))
        (tmp_path / f"{name}_example.txt").write_text(f"image_location,{header}\n{rows}")
    return tmp_path


def _source(root, year, track):
    if track == "mtl":
        return read_frame_source(root / "mtl.txt")
    if year <= 2022:
        return read_frame_source(root / "frames.csv", root / "names.txt")
    return read_frame_source(root / f"{track}_example.txt", root / "names.txt")


@pytest.mark.parametrize("year, track", list(EXPECTED))
def test_every_edition_and_track_byte_for_byte(organisers, year, track):
    out = organisers / "sub"
    report = write_submission(table_for(year), track, year, _source(organisers, year, track), out)
    written = {p.name: p.read_bytes() for p in (out / "predictions").iterdir()}
    assert written == {name: text.encode() for name, text in EXPECTED[(year, track)].items()}
    with zipfile.ZipFile(report.zip_path) as zf:
        assert {i.filename: zf.read(i) for i in zf.infolist()} == written  # at the zip's root, same bytes
    assert report.filled == (1 if track == "mtl" else 2)
    assert validate_submission(report.zip_path, get_format(track, year), _source(organisers, year, track)).ok


def test_every_edition_and_track_is_covered():
    offered = {
        2020: "expr va au",
        2021: "expr va au",
        2022: "expr va au mtl",
        2023: "expr va au",
        2024: "expr va au mtl",
        2025: "expr va au",
    }
    assert set(EXPECTED) == {(year, track) for year, tracks in offered.items() for track in tracks.split()}
