"""The validator on hand-broken submissions: each case names the expected verdict (the problem it must report,
or valid with a warning), and a correct submission of each layout is accepted."""

import io
import struct
import zipfile
from pathlib import Path

import pytest

from ensemble.frames import read_frame_source
from submissions import get_format, validate_submission

EXPR_8 = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
AU_12 = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
VA_V1 = "valence,arousal\n0.5,-0.25\n0.5,-0.25\n-0.1,0.3\n"
VA_V2 = "valence,arousal\n1.0,-1.0\n1,-1\n"
EXPR_ONE = f"image_location,{EXPR_8}\nv2/00001.jpg,7\nv2/00002.jpg,7\nv1/00001.jpg,4\nv1/00002.jpg,4\nv1/00003.jpg,0\n"
AU_ROW = "0,1,0,1,0,1,0,1,0,1,0,1"
MTL_HEADER = "image,valence,arousal,expression,aus"
MTL_ONE = (
    f"{MTL_HEADER}\nv2/00002.jpg,1.0,-1.0,7,{AU_ROW}\nv1/00003.jpg,-0.1,0.3,0,{AU_ROW}\n"
    f"v1/00001.jpg,0.5,-0.25,4,{AU_ROW}\nv2/00001.jpg,1.0,-1.0,7,{AU_ROW}\n"
)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    (root / "frames.csv").write_text("video,frames\nv1,3\nv2,2\n")
    rows = "".join(f"{v}/{f:05d}.jpg,\n" for v, n in (("v2", 2), ("v1", 3)) for f in range(1, n + 1))
    (root / "example.txt").write_text(f"image_location,{EXPR_8}\n{rows}")
    (root / "mtl.txt").write_text("image\nv2/00002.jpg\nv1/00003.jpg\nv1/00001.jpg\nv2/00001.jpg\n")
    return {
        "per-video": read_frame_source(root / "frames.csv"),
        "single-file": read_frame_source(root / "example.txt"),
        "mtl": read_frame_source(root / "mtl.txt"),
    }


def folder(files: dict[str, str | bytes]):
    def make(tmp: Path) -> Path:
        (tmp / "sub").mkdir()
        for name, text in files.items():
            (tmp / "sub" / name).write_bytes(text if isinstance(text, bytes) else text.encode())
        return tmp / "sub"

    return make


def zipped(entries: list[tuple[str, str | bytes]], method=zipfile.ZIP_DEFLATED):
    def make(tmp: Path) -> Path:
        with zipfile.ZipFile(tmp / "sub.zip", "w", method) as zf:
            for name, text in entries:
                zf.writestr(zipfile.ZipInfo(name), text)
        return tmp / "sub.zip"

    return make


def raw_file(name: str, data: bytes):
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name

    return make


def _patched_zip(tmp: Path, size: int) -> Path:
    """A zip whose entry declares ``size`` uncompressed bytes in its central directory (a lie)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("predictions.txt", EXPR_ONE + "v9/00001.jpg,0\n" * 50_000)
    data = bytearray(buffer.getvalue())
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = struct.pack("<I", size)
    (tmp / "liar.zip").write_bytes(bytes(data))
    return tmp / "liar.zip"


def _bad_crc(tmp: Path) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("predictions.txt", EXPR_ONE)
    data = bytearray(buffer.getvalue())
    at = data.find(b"v1/00003.jpg,0")
    data[at + 13] = ord("1")  # the stored bytes change, the recorded CRC does not
    (tmp / "crc.zip").write_bytes(bytes(data))
    return tmp / "crc.zip"


def _bomb(tmp: Path) -> Path:
    with zipfile.ZipFile(tmp / "bomb.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("predictions.txt", EXPR_ONE + "0" * 20_000_000)  # 20 MB that compress to ~20 kB
    return tmp / "bomb.zip"


def _replace(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


GOOD_VIDEOS = {"v1.txt": VA_V1, "v2.txt": VA_V2}
VALID = "valid"

# case: (layout, track, make, expected problem substring, or VALID with an expected warning substring)
CASES = {
    # per-video layout (2022 VA)
    "blank line inside a video file": (
        "per-video",
        "va",
        folder({"v1.txt": "valence,arousal\n0.5,-0.25\n\n0.5,-0.25\n-0.1,0.3\n", "v2.txt": VA_V2}),
        "v1.txt: blank line (a line-based reader shifts every later row): 1 line(s), first line 3",
    ),
    "blank line at the end": (
        "per-video",
        "va",
        folder({"v1.txt": VA_V1 + "\n", "v2.txt": VA_V2}),
        "v1.txt: blank line (a line-based reader shifts every later row): 1 line(s), first line 5",
    ),
    "missing video": ("per-video", "va", folder({"v1.txt": VA_V1}), "missing videos: 1 (v2.txt)"),
    "extra video": (
        "per-video",
        "va",
        folder({**GOOD_VIDEOS, "v9.txt": "valence,arousal\n0,0\n"}),
        "extra videos: 1 (v9.txt)",
    ),
    "wrong header": (
        "per-video",
        "va",
        folder({"v1.txt": _replace(VA_V1, "valence,arousal", "Valence,Arousal"), "v2.txt": VA_V2}),
        "v1.txt: wrong header on line 1: expected 'valence,arousal', got 'Valence,Arousal'",
    ),
    "header missing": (
        "per-video",
        "va",
        folder({"v1.txt": VA_V1.split("\n", 1)[1], "v2.txt": VA_V2}),
        "v1.txt: wrong header on line 1: expected 'valence,arousal', got '0.5,-0.25'",
    ),
    "too few lines": (
        "per-video",
        "va",
        folder({"v1.txt": "valence,arousal\n0,0\n0,0\n", "v2.txt": VA_V2}),
        "v1.txt: wrong line count: 2 frame line(s), the video has 3",
    ),
    "too many lines": (
        "per-video",
        "va",
        folder({"v1.txt": VA_V1 + "0,0\n", "v2.txt": VA_V2}),
        "v1.txt: wrong line count: 4 frame line(s), the video has 3",
    ),
    "word for a number": (
        "per-video",
        "va",
        folder({"v1.txt": _replace(VA_V1, "-0.1", "high"), "v2.txt": VA_V2}),
        "v1.txt: values that are not numbers: 1 line(s), first line 4: 'high'",
    ),
    "empty value": (
        "per-video",
        "va",
        folder({"v1.txt": _replace(VA_V1, "-0.1,0.3", "-0.1,"), "v2.txt": VA_V2}),
        "v1.txt: values that are not numbers: 1 line(s), first line 4",
    ),
    "nan value": (
        "per-video",
        "va",
        folder({"v1.txt": _replace(VA_V1, "-0.1", "nan"), "v2.txt": VA_V2}),
        "v1.txt: values that are not numbers: 1 line(s), first line 4: 'nan'",
    ),
    "three values on a line": (
        "per-video",
        "va",
        folder({"v1.txt": _replace(VA_V1, "-0.1,0.3", "-0.1,0.3,0.2"), "v2.txt": VA_V2}),
        "v1.txt: expected 2 value(s) per line: 1 line(s), first line 4: found 3",
    ),
    "valence out of range": (
        "per-video",
        "va",
        folder({"v1.txt": _replace(VA_V1, "-0.1", "1.5"), "v2.txt": VA_V2}),
        "v1.txt: values outside [-1, 1]: 1 line(s), first line 4",
    ),
    "2021 no-face sentinel in 2022": (
        "per-video",
        "va",
        folder({"v1.txt": _replace(VA_V1, "-0.1,0.3", "-5,-5"), "v2.txt": VA_V2}),
        "v1.txt: values outside [-1, 1]: 2 line(s), first line 4",
    ),
    "integers written as decimals (expr)": (
        "per-video",
        "expr",
        folder({"v1.txt": f"{EXPR_8}\n4\n3.0\n0\n", "v2.txt": f"{EXPR_8}\n7.0\n7\n"}),
        "integers written as decimals (like '3.0'; write '3'): 1 line(s), first line 3: '3.0'",
    ),
    "class index out of range": (
        "per-video",
        "expr",
        folder({"v1.txt": f"{EXPR_8}\n4\n8\n0\n", "v2.txt": f"{EXPR_8}\n7\n7\n"}),
        "v1.txt: class indices outside 0..7: 1 line(s), first line 3: '8'",
    ),
    "AU value 2": (
        "per-video",
        "au",
        folder(
            {
                "v1.txt": f"{AU_12}\n{AU_ROW}\n{AU_ROW}\n{_replace(AU_ROW, '1', '2')}\n",
                "v2.txt": f"{AU_12}\n{AU_ROW}\n{AU_ROW}\n",
            }
        ),
        "v1.txt: AU values other than 0/1: 1 line(s), first line 4: '2'",
    ),
    "AU bits written as decimals": (
        "per-video",
        "au",
        folder(
            {
                "v1.txt": f"{AU_12}\n{AU_ROW}\n{AU_ROW}\n{AU_ROW.replace('1', '1.0')}\n",
                "v2.txt": f"{AU_12}\n{AU_ROW}\n{AU_ROW}\n",
            }
        ),
        "v1.txt: integers written as decimals (like '3.0'; write '3'): 6 line(s), first line 4: '1.0'",
    ),
    "UTF-8 byte-order mark": (
        "per-video",
        "va",
        folder({"v1.txt": "\ufeff" + VA_V1, "v2.txt": VA_V2}),
        "v1.txt: starts with a UTF-8 byte-order mark (BOM, bytes EF BB BF)",
    ),
    "not UTF-8": (
        "per-video",
        "va",
        folder({"v1.txt": VA_V1.encode() + b"0.1,0\xe9\n", "v2.txt": VA_V2}),
        "v1.txt: bytes that are not UTF-8 text: 1 line(s), first line 5",
    ),
    "empty file": ("per-video", "va", folder({"v1.txt": "", "v2.txt": VA_V2}), "v1.txt: empty file"),
    "two zip entries with the same name": (
        "per-video",
        "va",
        zipped([("a/v1.txt", VA_V1), ("b/v1.txt", VA_V1), ("v2.txt", VA_V2)]),
        "sub.zip: 2 entries named v1.txt: a/v1.txt, b/v1.txt (which one the organisers read is unknown)",
    ),
    "macOS entries": (
        "per-video",
        "va",
        zipped([("v1.txt", VA_V1), ("v2.txt", VA_V2), ("__MACOSX/._v1.txt", "\0\5junk"), ("._v2.txt", "junk")]),
        (VALID, "ignored 2 macOS metadata entr(ies) (__MACOSX/, ._*)"),
    ),
    "Windows zip with backslashes": (
        "per-video",
        "va",
        zipped([("sub\\v1.txt", VA_V1), ("sub\\v2.txt", VA_V2)]),
        (VALID, "2 entry name(s) use backslashes (a zip made on Windows), read as folders"),
    ),
    "CRLF line ends": (
        "per-video",
        "va",
        folder({"v1.txt": VA_V1.replace("\n", "\r\n"), "v2.txt": VA_V2}),
        (VALID, "v1.txt: 4 line(s) end with CRLF"),
    ),
    "zip bomb": ("single-file", "expr", _bomb, "predictions.txt declares 20,000,"),
    "zip entry that lies about its size": (
        "single-file",
        "expr",
        lambda t: _patched_zip(t, 300),
        "corrupt data (Bad CRC-32",
    ),
    "bad CRC": (
        "single-file",
        "expr",
        _bad_crc,
        "predictions.txt: corrupt data (Bad CRC-32 for file 'predictions.txt')",
    ),
    "truncated zip": (
        "single-file",
        "expr",
        lambda t: raw_file("cut.zip", zipped([("predictions.txt", EXPR_ONE)])(t).read_bytes()[:60])(t),
        "cut.zip: not a readable zip file",
    ),
    "one giant line": (
        "single-file",
        "expr",
        raw_file("p.txt", b"x" * (2 << 20)),
        "p.txt: larger than a valid submission file can be (65,915 bytes); stopped reading",
    ),
    # single-file layout (2025 EXPR): rows are the example file's images, in its order
    "rows out of order": (
        "single-file",
        "expr",
        raw_file(
            "p.txt", _replace(EXPR_ONE, "v2/00001.jpg,7\nv2/00002.jpg,7", "v2/00002.jpg,7\nv2/00001.jpg,7").encode()
        ),
        "image names out of the frame source's order: 2 line(s), first line 2: 'v2/00002.jpg', expected 'v2/00001.jpg'",
    ),
    "last row missing": (
        "single-file",
        "expr",
        raw_file("p.txt", EXPR_ONE.removesuffix("v1/00003.jpg,0\n").encode()),
        "1 image(s) of the frame source missing at the end: 4 row(s) for 5 listed; first missing 'v1/00003.jpg'",
    ),
    "row past the last image": (
        "single-file",
        "expr",
        raw_file("p.txt", (EXPR_ONE + "v1/00004.jpg,0\n").encode()),
        "rows after the frame source's last image: 1 line(s), first line 7",
    ),
    "blank line in the single file": (
        "single-file",
        "expr",
        raw_file("p.txt", _replace(EXPR_ONE, "\nv1/00001.jpg", "\n\nv1/00001.jpg").encode()),
        "p.txt: blank line (a line-based reader shifts every later row): 1 line(s), first line 4",
    ),
    "space after the image name": (
        "single-file",
        "expr",
        raw_file("p.txt", _replace(EXPR_ONE, "v1/00002.jpg,4", "v1/00002.jpg ,4").encode()),
        "image names out of the frame source's order: 1 line(s), first line 5: 'v1/00002.jpg '",
    ),
    "old per-video header": (
        "single-file",
        "expr",
        raw_file("p.txt", EXPR_ONE.replace("image_location,", "", 1).encode()),
        f"wrong header on line 1: expected 'image_location,{EXPR_8}', got '{EXPR_8}'",
    ),
    "per-video files for a single-file edition": (
        "single-file",
        "expr",
        folder({"v1.txt": f"{EXPR_8}\n4\n4\n0\n", "v2.txt": f"{EXPR_8}\n7\n7\n"}),
        "2 .txt files, the single-file layout has one: v1.txt, v2.txt",
    ),
    "no txt in the zip": (
        "single-file",
        "expr",
        zipped([("predictions.csv", EXPR_ONE)]),
        "no .txt file with the expr predictions",
    ),
    # multi-task layout (2024, ABAW7): rows in the image list's order
    "multi-task wrong header": (
        "mtl",
        "mtl",
        raw_file("p.txt", MTL_ONE.replace(MTL_HEADER, "image,valence,arousal,expression,au1", 1).encode()),
        f"wrong header on line 1: expected '{MTL_HEADER}'",
    ),
    "multi-task missing AU": (
        "mtl",
        "mtl",
        raw_file(
            "p.txt", _replace(MTL_ONE, f"v1/00003.jpg,-0.1,0.3,0,{AU_ROW}", "v1/00003.jpg,-0.1,0.3,0,0,1").encode()
        ),
        "expected 15 value(s) per line: 1 line(s), first line 3: found 5",
    ),
    "multi-task expression as a float": (
        "mtl",
        "mtl",
        raw_file("p.txt", _replace(MTL_ONE, "v1/00001.jpg,0.5,-0.25,4,", "v1/00001.jpg,0.5,-0.25,4.0,").encode()),
        "integers written as decimals (like '3.0'; write '3'): 1 line(s), first line 4: '4.0'",
    ),
    "multi-task sorted instead of in list order": (
        "mtl",
        "mtl",
        raw_file("p.txt", (MTL_HEADER + "\n" + "".join(sorted(MTL_ONE.splitlines(True)[1:]))).encode()),
        "image names out of the frame source's order: 3 line(s), first line 2: 'v1/00001.jpg', expected 'v2/00002.jpg'",
    ),
}

TRACK_YEAR = {"per-video": 2022, "single-file": 2025, "mtl": 2024}


def test_corpus_is_large_enough():
    assert len(CASES) >= 30
    assert sum(isinstance(case[3], tuple) for case in CASES.values()) >= 3  # valid with a warning


@pytest.mark.parametrize("case", CASES)
def test_hand_broken_submission_gets_its_verdict(sources, tmp_path, case):
    layout, track, make, expected = CASES[case]
    report = validate_submission(make(tmp_path), get_format(track, TRACK_YEAR[layout]), sources[layout])
    if isinstance(expected, tuple):
        assert report.ok, report.problems
        assert any(expected[1] in w for w in report.warnings), report.warnings
    else:
        assert not report.ok
        assert any(expected in p for p in report.problems), report.problems


@pytest.mark.parametrize(
    "layout, track, make",
    [
        ("per-video", "va", folder(GOOD_VIDEOS)),
        ("per-video", "va", zipped(list(GOOD_VIDEOS.items()))),
        ("single-file", "expr", raw_file("predictions.txt", EXPR_ONE.encode())),
        ("single-file", "expr", zipped([("predictions.txt", EXPR_ONE)])),
        ("mtl", "mtl", zipped([("MTL_predictions.txt", MTL_ONE)])),
    ],
)
def test_a_correct_submission_of_each_layout_is_accepted(sources, tmp_path, layout, track, make):
    report = validate_submission(make(tmp_path), get_format(track, TRACK_YEAR[layout]), sources[layout])
    assert report.ok and not report.warnings, (report.problems, report.warnings)
    assert report.rows == len(sources[layout])


def test_every_problem_is_listed_with_file_line_and_count(sources, tmp_path):
    broken = folder({"v1.txt": "Valence,Arousal\n0.5,x\n\n2,0\n", "v9.txt": "valence,arousal\n0,0\n"})
    problems = validate_submission(broken(tmp_path), get_format("va", 2022), sources["per-video"]).problems
    assert problems == [
        "missing videos: 1 (v2.txt)",
        "extra videos: 1 (v9.txt)",
        "v1.txt: wrong header on line 1: expected 'valence,arousal', got 'Valence,Arousal'",
        "v1.txt: values that are not numbers: 1 line(s), first line 2: 'x'",
        "v1.txt: blank line (a line-based reader shifts every later row): 1 line(s), first line 3",
        "v1.txt: values outside [-1, 1]: 1 line(s), first line 4: '2'",
        "v1.txt: wrong line count: 2 frame line(s), the video has 3",
    ]


def test_2021_accepts_the_no_face_sentinels_it_allowed(sources, tmp_path):
    files = folder({"v1.txt": "valence,arousal\n0.5,-0.25\n-5,-5\n-0.1,0.3\n", "v2.txt": VA_V2})
    assert validate_submission(files(tmp_path), get_format("va", 2021), sources["per-video"]).ok


def test_a_line_without_end_stops_reading(tmp_path):
    rows = "".join(f"v{v}/{f:05d}.jpg,\n" for v in range(10) for f in range(1, 5001))
    (tmp_path / "example.txt").write_text(f"image_location,{EXPR_8}\n{rows}")
    (tmp_path / "p.txt").write_bytes(f"image_location,{EXPR_8}\n".encode() + b"7" * (3 << 19))
    source = read_frame_source(tmp_path / "example.txt")
    problems = validate_submission(tmp_path / "p.txt", get_format("expr", 2025), source).problems
    assert problems == ["p.txt: a line longer than 1,048,576 bytes; stopped reading"]


def test_a_source_that_does_not_fit_the_layout_is_a_one_line_error(sources, tmp_path):
    from ensemble.errors import SubmissionError

    submission = folder(GOOD_VIDEOS)(tmp_path)
    with pytest.raises(SubmissionError, match=r"per-video files need every frame 1..n .* image list lists otherwise"):
        validate_submission(submission, get_format("va", 2022), sources["mtl"])
    with pytest.raises(SubmissionError, match=r"this example file is for another track or edition"):
        validate_submission(submission, get_format("va", 2025), sources["single-file"])
