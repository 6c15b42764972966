"""Frame sources: the kind told from content (never from the file name), rows in the source's order, the
video-name list selecting and ordering videos, and one-line errors for what is none of the kinds."""

import numpy as np
import pytest

from ensemble.errors import AffectEnsError, DataError
from ensemble.frames import describe, frame_roots, read_frame_source, video_folders

EXAMPLE = "image_location,valence,arousal\nb/00001.jpg,\nb/00002.jpg,\na/00001.jpg,\na/00002.jpg,\na/00003.jpg,\n"


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _rows(source):
    return [(source.videos[c], int(f)) for c, f in zip(source.codes, source.frames)]


def test_each_kind_is_told_from_its_content(tmp_path):
    manifest = _write(tmp_path, "anything.txt", "video,frames\nb,2\na,3\n")
    example = _write(tmp_path, "test_frames.csv", EXAMPLE)  # a misleading name
    listed = _write(tmp_path, "MTL.txt", "image\na/00003.jpg\nb/00001.jpg\n")
    for video, n in (("a", 3), ("b", 2)):
        (tmp_path / "faces" / video).mkdir(parents=True)
        for f in range(1, n + 1):
            (tmp_path / "faces" / video / f"{f:05d}.jpg").write_bytes(b"")
    kinds = {p.name: read_frame_source(p).kind for p in (manifest, example, listed, tmp_path / "faces")}
    assert kinds == {
        "anything.txt": "manifest",
        "test_frames.csv": "example file",
        "MTL.txt": "image list",
        "faces": "frame folders",
    }
    assert _rows(read_frame_source(manifest)) == [("b", 1), ("b", 2), ("a", 1), ("a", 2), ("a", 3)]
    assert _rows(read_frame_source(example)) == [("b", 1), ("b", 2), ("a", 1), ("a", 2), ("a", 3)]
    assert read_frame_source(listed).image_names() == ["a/00003.jpg", "b/00001.jpg"]
    assert _rows(read_frame_source(tmp_path / "faces")) == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2)]
    assert describe(read_frame_source(example)) == f"{example}: example file, 2 video(s), 5 frame(s)"


def test_the_list_keeps_its_image_names_byte_for_byte(tmp_path):
    path = _write(tmp_path, "list.txt", "image\r\nv1/1.jpg\r\nv1/000002.png\r\n\r\nv2/00009.jpg\r\n")
    source = read_frame_source(path)
    assert source.image_names() == ["v1/1.jpg", "v1/000002.png", "v2/00009.jpg"]
    assert _rows(source) == [("v1", 1), ("v1", 2), ("v2", 9)]


def test_an_image_list_without_header_and_an_example_with_bom_and_values(tmp_path):
    bare = _write(tmp_path, "bare.txt", "v1/00001.jpg\nv1/00002.jpg\n")
    assert read_frame_source(bare).image_names() == ["v1/00001.jpg", "v1/00002.jpg"]
    valued = _write(
        tmp_path, "ex.txt", "\ufeffimage_location,valence,arousal\nv1/00001.jpg,0.1,0.2\nv1/00002.jpg,0,0\n"
    )
    source = read_frame_source(valued)
    assert source.kind == "example file" and source.image_names() == ["v1/00001.jpg", "v1/00002.jpg"]


def test_the_video_name_list_selects_and_orders(tmp_path):
    example = _write(tmp_path, "ex.txt", EXAMPLE.replace("a/00003.jpg,\n", "a/00003.jpg,\nc/00001.jpg,\n"))
    names = _write(tmp_path, "names.txt", "a\n\nb\n")
    source = read_frame_source(example, names)
    assert _rows(source) == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2)]
    assert source.image_names()[:2] == ["a/00001.jpg", "a/00002.jpg"] and source.left_out == 1
    assert "1 video(s) of it not in --videos left out" in describe(source)
    (tmp_path / "faces" / "a").mkdir(parents=True)
    (tmp_path / "faces" / "a" / "00002.jpg").write_bytes(b"")
    (tmp_path / "faces" / "z").mkdir()  # another track's video: not read
    assert _rows(read_frame_source(tmp_path / "faces", _write(tmp_path, "only_a.txt", "a\n"))) == [("a", 1), ("a", 2)]


def test_incomplete_videos_are_found(tmp_path):
    assert read_frame_source(_write(tmp_path, "ex.txt", EXAMPLE)).incomplete_video() is None
    gaps = read_frame_source(_write(tmp_path, "mtl.txt", "image\na/00001.jpg\na/00003.jpg\n"))
    assert gaps.incomplete_video() == "a"
    split = read_frame_source(_write(tmp_path, "split.txt", "image\na/00001.jpg\nb/00001.jpg\na/00002.jpg\n"))
    assert split.incomplete_video() == "a" and np.array_equal(split.frames, [1, 1, 2])


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("names.txt", "v1\nv2\n", "not a frame source: expected a 'video,frames' manifest"),
        ("names.txt", "v1\nv2\n", "(a list of video names goes to --videos)"),
        (
            "bad.txt",
            "image\nv1/00001.jpg\nv1/frame2.jpg\n",
            "bad.txt: line 3: expected an image 'video/00001.jpg', got 'v1/frame2.jpg'",
        ),
        ("deep.txt", "image\nv1/00001.jpg\nx/v1/00002.jpg\n", "deep.txt: line 3: expected an image"),
        (
            "twice.txt",
            "image\nv1/00001.jpg\nv1/00001.jpg\n",
            "twice.txt: 1 image(s) listed twice, first 'v1/00001.jpg' (row 2 of the list)",
        ),
        ("empty.txt", "image_location,valence,arousal\n", "empty.txt: the example file lists no images"),
        ("m.csv", "video,frames\nv1,0\n", "frame counts must be positive integers"),
        ("ids.csv", "video,frames\n../../x,3\n", "video id '../../x' cannot be used as a file name"),
        ("abs.csv", "video,frames\n/abs,3\n", "video id '/abs' cannot be used as a file name"),
        ("nul.csv", "video,frames\na\x00b,3\n", "cannot be used as a file name"),
        ("latin1.txt", b"image\nv\xe9/00001.jpg\n", "not UTF-8 text"),
    ],
)
def test_what_is_no_frame_source_is_a_one_line_error(tmp_path, name, text, message):
    with pytest.raises(AffectEnsError) as caught:
        read_frame_source(_write(tmp_path, name, text))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_video_list_errors(tmp_path):
    example = _write(tmp_path, "ex.txt", EXAMPLE)
    with pytest.raises(
        DataError, match=r"names.txt: 1 listed video\(s\) are not in the frame source .*ex.txt, first 'c'"
    ):
        read_frame_source(example, _write(tmp_path, "names.txt", "a\nc\n"))
    with pytest.raises(DataError, match=r"twice.txt: video 'a' listed twice"):
        read_frame_source(example, _write(tmp_path, "twice.txt", "a\na\n"))
    with pytest.raises(DataError, match=r"header.txt: 'image_location,valence,arousal' is not a video name"):
        read_frame_source(example, _write(tmp_path, "header.txt", "image_location,valence,arousal\na\n"))
    with pytest.raises(DataError, match="nowhere.txt: video-name list not found"):
        read_frame_source(example, tmp_path / "nowhere.txt")
    with pytest.raises(DataError, match="nowhere.csv: frame source not found"):
        read_frame_source(tmp_path / "nowhere.csv")


def test_fill_missing_frames_interpolates_and_leaves_the_callers_table_alone():
    import copy

    import pandas as pd

    from ensemble.contract import PredictionTable, TableMeta
    from ensemble.frames import fill_missing_frames

    data = pd.DataFrame(
        {"video": ["b", "a", "a"], "frame": [1, 2, 5], "valence": [0.3, 0.2, 0.8], "arousal": [0.1, -0.4, 0.2]}
    )
    meta = TableMeta(("va",), 2025, "m", "test", {"config": {"seed": 1}})
    table = PredictionTable(data.copy(), meta)
    before = copy.deepcopy(meta)
    filled, added = fill_missing_frames(table, {"a": 6, "b": 2})
    assert added == 5
    assert filled.data["video"].tolist() == ["a"] * 6 + ["b"] * 2
    assert filled.data["frame"].tolist() == [1, 2, 3, 4, 5, 6, 1, 2]
    want = np.interp(np.arange(1, 7), [2, 5], [0.2, 0.8])  # nearest at the ends: 0.2 before frame 2, 0.8 after 5
    np.testing.assert_allclose(filled.data["valence"].to_numpy()[:6], want, atol=1e-6)
    np.testing.assert_allclose(filled.data["arousal"].to_numpy()[6:], [0.1, 0.1], atol=1e-6)
    assert filled.meta.extra["filled_frames"] == 5 and filled.meta.extra["config"] == {"seed": 1}
    assert table.meta == before and "filled_frames" not in meta.extra  # the caller's metadata is untouched
    pd.testing.assert_frame_equal(table.data, data)


def test_every_cropped_aligned_folder_is_a_frame_root_and_a_video_in_two_is_an_error(tmp_path):
    for root, video in [("cropped_aligned", "a"), ("cropped_aligned_new_50_vids", "b"), ("cropped_aligned_mine", "c")]:
        (tmp_path / root / video).mkdir(parents=True)
    (tmp_path / "cropped" / "d").mkdir(parents=True)  # the unaligned crops are no frame root
    (tmp_path / "cropped_aligned.zip").write_bytes(b"PK")
    assert [p.name for p in frame_roots(tmp_path)] == [
        "cropped_aligned",
        "cropped_aligned_mine",
        "cropped_aligned_new_50_vids",
    ]
    folders = video_folders(tmp_path)
    assert {v: p.parent.name for v, p in folders.items()} == {
        "a": "cropped_aligned",
        "b": "cropped_aligned_new_50_vids",
        "c": "cropped_aligned_mine",
    }
    (tmp_path / "cropped_aligned" / "b").mkdir()
    with pytest.raises(
        DataError, match=r"^video 'b' has frames in two roots: .*cropped_aligned/b and .*_new_50_vids/b"
    ):
        video_folders(tmp_path)
