"""Frame sources (which frames a submission lists, in which order), frame counts of videos, and filling the
frames a member's prediction table lacks.

A frame source is one of four kinds, told apart by content (``read_frame_source``):

- ``manifest``: a CSV ``video,frames``; every frame 1..n of each video, videos in file order.
- ``frame folders``: a folder of ``<video>/00001.jpg`` folders; frames 1..the highest number present.
- ``example file``: the organisers' ``CVPR_5th_ABAW_EXPR_test_set_example.txt``, ``..._test_set_sample.txt``
  (ABAW5 on; the names vary, ``Edition.release``), header
  ``image_location,...`` then one row ``video/00001.jpg,...`` per image they score.
- ``image list``: the organisers' multi-task test list (``MTL_Challenge_test_set_release.txt``), a header line
  then one ``video/00001.jpg`` per line.

A video-name list (``--videos``, the organisers' ``<Track>_test_set_release.txt``: one name per line) selects
the videos of a track and fixes their order. Rows keep the source's order and its image names byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ensemble.errors import ContractError, DataError

FRAME_FILE = re.compile(r"^(\d{5})\.(jpg|png)$")
MANIFEST = "manifest"
FOLDERS = "frame folders"
EXAMPLE = "example file"
IMAGE_LIST = "image list"
KINDS = (MANIFEST, FOLDERS, EXAMPLE, IMAGE_LIST)
EXAMPLE_PREFIX = "image_location,"
IMAGE = re.compile(r"^[^,/\s]+/\d+\.(?:jpg|png)(?:,|$)")
IMAGE_NAME = re.compile(r"^[^,/\s]+/\d+\.(?:jpg|png)$")


def run_bounds(codes: np.ndarray) -> np.ndarray:
    """Where each run of equal codes starts (a video's rows, contiguous as the contract keeps them), then the end:
    run ``i`` is rows ``bounds[i]:bounds[i + 1]``."""
    return np.r_[0, np.flatnonzero(np.diff(codes)) + 1, len(codes)]


def video_runs(codes: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal video codes."""
    bounds = run_bounds(codes).tolist()
    return list(zip(bounds[:-1], bounds[1:]))


@dataclass
class FrameSource:
    """The rows a submission must have, in order: ``videos[codes[i]]``, frame ``frames[i]``, written as
    ``images[i]`` (lists) or ``video/00001.jpg`` (manifests, folders)."""

    kind: str
    path: Path
    videos: list[str]
    codes: np.ndarray  # int64 index into videos, one per row
    frames: np.ndarray  # int64 frame number, one per row
    images: list[str] | None = None
    left_out: int = 0  # videos of the source that --videos did not select
    header: str | None = None  # an example file's first line: it names the track's columns

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def knows_lengths(self) -> bool:
        """True when the source gives each video's length (its last frame is the video's last)."""
        return self.kind in (MANIFEST, FOLDERS)

    def image_names(self) -> list[str]:
        """The rows as ``video/00001.jpg`` strings, exactly as a list source has them (made once for the others)."""
        if self.images is None:
            suffix = [f"{f:05d}.jpg" for f in range(int(self.frames.max()) + 1)]
            names: list[str] = []
            for start, stop in video_runs(self.codes):
                prefix = f"{self.videos[self.codes[start]]}/"
                names += map(prefix.__add__, (suffix[f] for f in self.frames[start:stop].tolist()))
            self.images = names
        return self.images

    def counts(self) -> dict[str, int]:
        """Rows per video."""
        return dict(zip(self.videos, np.bincount(self.codes, minlength=len(self.videos)).tolist()))

    def incomplete_video(self) -> str | None:
        """The first video whose rows are not frames 1..n in order (None when every video's are)."""
        bounds = run_bounds(self.codes)
        starts = bounds[:-1]
        expected = np.arange(len(self.frames)) - np.repeat(starts, np.diff(bounds)) + 1
        bad = (self.frames != expected) | (np.bincount(self.codes[starts], minlength=len(self.videos)) != 1)[self.codes]
        return self.videos[self.codes[np.flatnonzero(bad)[0]]] if bad.any() else None


def from_counts(kind: str, path: Path, counts: dict[str, int]) -> FrameSource:
    """Frames 1..n of each video, videos in the order given."""
    lengths = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    codes = np.repeat(np.arange(len(counts), dtype=np.int64), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    frames = np.arange(len(codes), dtype=np.int64) - starts + 1
    return FrameSource(kind, path, list(counts), codes, frames)


# --- reading the four kinds -----------------------------------------------------------------------------------


def read_manifest(path: str | Path) -> dict[str, int]:
    """Frames per video from a CSV with columns ``video,frames``."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: frame manifest not found")
    try:
        data = pd.read_csv(path, dtype={"video": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        raise DataError(f"{path}: not a readable CSV manifest") from None
    if list(data.columns[:2]) != ["video", "frames"]:
        raise DataError(f"{path}: manifest header must be 'video,frames', got {','.join(map(str, data.columns))!r}")
    bad = ~pd.to_numeric(data["frames"], errors="coerce").fillna(0).gt(0)
    if bad.any():
        raise DataError(
            f"{path}: frame counts must be positive integers: {int(bad.sum())} row(s), first {data['video'][bad].iloc[0]!r}"
        )
    if data["video"].duplicated().any():
        raise DataError(f"{path}: video listed twice: {data['video'][data['video'].duplicated()].iloc[0]!r}")
    return dict(zip(data["video"], data["frames"].astype(int)))


def face_file(frame: int) -> str:
    """The name of frame ``frame``'s face image as written (crop-faces, the synthetic data): ``00042.jpg``."""
    return f"{frame:05d}.jpg"


def face_images(folder: str | Path) -> dict[int, Path]:
    """Frame number -> face image in a video's frame folder (``video_folders``): ``00001.jpg`` or ``.png``, as
    ``FRAME_FILE`` reads frame folders everywhere; the one reading of a frame's file name."""
    return {int(m.group(1)): p for p in sorted(Path(folder).iterdir()) if (m := FRAME_FILE.match(p.name))}


def count_frame_folders(root: str | Path, videos: list[str] | None = None) -> dict[str, int]:
    """Frames per video from ``root/<video>/NNNNN.jpg``: the highest frame number present (frames after
    the last detected face cannot be seen this way; prefer a manifest)."""
    root = Path(root)
    names = videos if videos is not None else sorted(p.name for p in root.iterdir() if p.is_dir())
    if not names:
        raise DataError(f"{root}: no frame folders (expected <video>/00001.jpg ...)")
    counts = {}
    for video in names:
        numbers = [int(m.group(1)) for p in (root / video).glob("*") if (m := FRAME_FILE.match(p.name))]
        if not numbers:
            raise DataError(f"{root / video}: no frame images (expected 00001.jpg ...)")
        counts[video] = max(numbers)
    return counts


def _text(path: Path) -> str:
    """A text file without its BOM, with ``\\n`` line ends; unreadable or non-UTF-8 files are one-line errors."""
    if not path.is_file():
        raise DataError(f"{path}: frame source not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


def _text_head(path: Path) -> str:
    """The first 64 kB of a file as text (no BOM, no carriage returns)."""
    if not path.is_file():
        raise DataError(f"{path}: frame source not found")
    with open(path, "rb") as file:
        return file.read(65536).removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace").replace("\r", "")


def detect_kind(path: Path) -> str:
    """The kind of frame source at ``path``, from its content."""
    if path.is_dir():
        return FOLDERS
    lines = _text_head(path).split("\n", 2)
    first = lines[0].strip()
    if first.startswith(EXAMPLE_PREFIX):
        return EXAMPLE
    if first.replace(" ", "").startswith("video,frames"):
        return MANIFEST
    if IMAGE.match(first) or (len(lines) > 1 and IMAGE.match(lines[1].strip())):
        return IMAGE_LIST
    hint = " (a list of video names goes to --videos)" if first and not re.search(r"[,/]", first) else ""
    raise DataError(
        f"{path}: not a frame source: expected a 'video,frames' manifest, a folder of frame folders, the "
        f"organisers' example file (header 'image_location,...') or their MTL image list "
        f"('video/00001.jpg' per line); line 1 is {first[:60]!r}{hint}"
    )


def _list_keys(path: Path, kind: str) -> bytes:
    """The image names of a list source's rows, one per line (header, blank lines and other columns dropped)."""
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n")
    first, _, rest = raw.partition(b"\n")
    body = rest if kind == EXAMPLE or not IMAGE.match(first.decode("utf-8", "replace").strip()) else raw
    if b"," in body:  # the example file's placeholder columns; a bare trailing comma is the common case
        body = (body + b"\n").replace(b",\n", b"\n")
        body = re.sub(rb",[^\n]*", b"", body) if b"," in body else body
    body = body.strip(b"\n")
    if b"\n\n" in body or b" " in body or b"\t" in body:
        body = b"\n".join(line.strip() for line in body.split(b"\n") if line.strip())
    if not body:
        raise DataError(f"{path}: the {kind} lists no images")
    return body


def _bad_image(path: Path, kind: str) -> DataError:
    """The first line of a list source that is not an image name, as a one-line error."""
    for number, line in enumerate(_text(path).split("\n"), start=1):
        key = line.split(",", 1)[0].strip()
        if number == 1 and (kind == EXAMPLE or not IMAGE.match(key)):
            continue
        if key and not IMAGE_NAME.match(key):
            return DataError(f"{path}: line {number}: expected an image 'video/00001.jpg', got {line[:60]!r}")
    return DataError(f"{path}: unreadable image names")


def _parse_images(keys: bytes) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """(videos in order of first appearance, video code and frame number per row) of ``video/00001.jpg``
    lines, parsed by pandas' C reader; None when a line is not such a name."""
    import csv
    import io

    import pandas as pd

    stems = (keys + b"\n").replace(b".jpg\n", b"\n").replace(b".png\n", b"\n")
    try:
        data = pd.read_csv(
            io.BytesIO(stems),
            sep="/",
            header=None,
            names=["video", "frame"],
            dtype={"video": "category", "frame": np.int64},
            quoting=csv.QUOTE_NONE,
            na_filter=False,
            skip_blank_lines=False,
        )
    except (ValueError, pd.errors.ParserError):
        return None
    if len(data) != keys.count(b"\n") + 1 or (data["frame"] < 1).any() or (data["video"] == "").any():
        return None
    codes, videos = pd.factorize(data["video"].cat.codes.to_numpy(), sort=False)
    names = data["video"].cat.categories
    return [str(names[v]) for v in videos], codes.astype(np.int64), data["frame"].to_numpy(np.int64)


def read_list(path: Path, kind: str) -> FrameSource:
    """An organisers' example file or MTL image list, rows in file order."""
    keys = _list_keys(path, kind)
    parsed = _parse_images(keys)
    if parsed is None:
        raise _bad_image(path, kind)
    try:
        images = keys.decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start} of the image names)") from None
    videos, codes, frames = parsed
    header = _text_head(path).split("\n", 1)[0].strip() if kind == EXAMPLE else None
    source = FrameSource(kind, path, videos, codes, frames, images, header=header)
    _check_unique(source)
    return source


def _check_unique(source: FrameSource) -> None:
    composite = source.codes * (int(source.frames.max()) + 1) + source.frames
    order = np.argsort(composite, kind="stable")
    twice = np.flatnonzero(np.diff(composite[order]) == 0)
    if len(twice):
        row = int(order[twice[0] + 1])
        raise DataError(
            f"{source.path}: {len(twice)} image(s) listed twice, first {source.image_names()[row]!r} "
            f"(row {row + 1} of the list)"
        )


def read_video_names(path: str | Path) -> list[str]:
    """The organisers' video-name list: one name per line, no header; blank lines are ignored."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video-name list not found")
    names = [line.strip() for line in _text(path).split("\n") if line.strip()]
    if not names:
        raise DataError(f"{path}: the video-name list is empty")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{path}: video {name!r} listed twice")
        if "," in name or "/" in name:
            raise DataError(f"{path}: {name[:60]!r} is not a video name (one name per line, no header)")
        seen.add(name)
    return names


def select_videos(source: FrameSource, names: list[str], names_path: Path) -> FrameSource:
    """``source`` restricted to the videos ``names`` lists, in that order; a listed video the source lacks is
    an error, source videos not listed are left out (counted in ``left_out``)."""
    position = {v: i for i, v in enumerate(source.videos)}
    absent = [n for n in names if n not in position]
    if absent:
        raise DataError(
            f"{names_path}: {len(absent)} listed video(s) are not in the frame source {source.path}, first {absent[0]!r}"
        )
    rank = np.full(len(source.videos), -1, dtype=np.int64)
    rank[[position[n] for n in names]] = np.arange(len(names))
    new_codes = rank[source.codes]
    keep = np.flatnonzero(new_codes >= 0)
    order = keep[np.argsort(new_codes[keep], kind="stable")]
    images = None if source.images is None else [source.images[i] for i in order.tolist()]
    left_out = source.left_out + len(source.videos) - len(names)
    return replace(
        source,
        videos=list(names),
        codes=new_codes[order],
        frames=source.frames[order],
        images=images,
        left_out=left_out,
    )


def check_video_ids(source: FrameSource) -> None:
    """Every video id is one plain path component (it names a file of the per-video layout)."""
    from ensemble.outputs import safe_name

    for video in source.videos:
        safe_name(video, f"{source.path}: video id")


def read_frame_source(path: str | Path, videos: str | Path | None = None) -> FrameSource:
    """The frame source at ``path`` (its kind told from its content), restricted to and ordered by the
    video-name list ``videos`` when given."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: frame source not found")
    kind = detect_kind(path)
    names = read_video_names(videos) if videos is not None else None
    if kind == FOLDERS:
        source = from_counts(kind, path, count_frame_folders(path, names))
    elif kind == MANIFEST:
        source = from_counts(kind, path, read_manifest(path))
    else:
        source = read_list(path, kind)
    if names is not None and kind != FOLDERS:
        source = select_videos(source, names, Path(videos))
    check_video_ids(source)
    return source


def describe(source: FrameSource) -> str:
    """One line for the user: the kind, what it holds, what --videos left out."""
    left = f"; {source.left_out} video(s) of it not in --videos left out" if source.left_out else ""
    return f"{source.path}: {source.kind}, {len(source.videos)} video(s), {len(source):,} frame(s){left}"


# --- table rows on a frame source: where each row finds its values ------------------------------------------


@dataclass
class Placement:
    """Where each source row finds its values: table rows before and after it in its video (-1: none) and
    its position between them (0 at ``before``, 1 at ``after``)."""

    before: np.ndarray
    after: np.ndarray
    weight: np.ndarray
    exact: np.ndarray  # the table has this very frame
    dropped: int  # table videos the source does not list

    @property
    def filled(self) -> int:
        return int((~self.exact).sum())


def _table_codes(table, source: FrameSource) -> np.ndarray:
    import pandas as pd

    return pd.Index(source.videos).get_indexer(table.data["video"]).astype(np.int64)


def check_lengths(table, source: FrameSource, codes: np.ndarray) -> None:
    """No predicted frame past the end of its video, when the source gives the videos' lengths."""
    if not source.knows_lengths:
        return
    frames = table.data["frame"].to_numpy(np.int64)
    keep = codes >= 0
    last = np.zeros(len(source.videos), dtype=np.int64)
    np.maximum.at(last, codes[keep], frames[keep])
    length = np.bincount(source.codes, minlength=len(source.videos))
    over = np.flatnonzero(last > length)
    if len(over):
        v = over[0]
        raise ContractError(
            f"{source.path}: frames past the video's length in {len(over)} video(s), first "
            f"{source.videos[v]!r} (frame {last[v]} of {length[v]})"
        )


def place(table, source: FrameSource) -> Placement:
    """The table rows around every source row; a source video with no prediction at all is an error."""
    codes = _table_codes(table, source)
    check_lengths(table, source, codes)
    have = np.bincount(codes[codes >= 0], minlength=len(source.videos))
    if (have == 0).any():
        absent = np.flatnonzero(have == 0)
        raise ContractError(
            f"no predictions for {len(absent)} video(s) of the frame source {source.path}, "
            f"first {source.videos[absent[0]]!r}"
        )
    frames = table.data["frame"].to_numpy(np.int64)
    span = int(max(frames.max(), source.frames.max())) + 2
    rows = np.flatnonzero(codes >= 0)
    keys = codes[rows] * span + frames[rows]
    order = np.argsort(keys, kind="stable")
    keys, rows = keys[order], rows[order]
    want = source.codes * span + source.frames
    pos = np.searchsorted(keys, want)
    exact = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == want)
    after_pos = np.minimum(pos, len(keys) - 1)
    after_ok = (pos < len(keys)) & (keys[after_pos] // span == source.codes)
    before_pos = np.where(exact, pos, pos - 1)
    before_ok = (before_pos >= 0) & (keys[np.maximum(before_pos, 0)] // span == source.codes)
    before = np.where(before_ok, rows[np.maximum(before_pos, 0)], -1)
    after = np.where(exact, before, np.where(after_ok, rows[after_pos], -1))
    weight = _weights(frames, source.frames, before, after)
    dropped = int(len(np.unique(table.data["video"].to_numpy()[codes < 0]))) if (codes < 0).any() else 0
    return Placement(before, after, weight, exact, dropped)


def _weights(frames: np.ndarray, wanted: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    both = (before >= 0) & (after >= 0) & (before != after)
    weight = np.zeros(len(wanted))
    f0, f1 = frames[before[both]], frames[after[both]]
    weight[both] = (wanted[both] - f0) / (f1 - f0)
    weight[(before < 0) & (after >= 0)] = 1.0
    return weight


def fill(values: np.ndarray, placement: Placement, policy: str) -> np.ndarray:
    """``values`` (table rows, k) on the source rows, gaps filled by ``policy`` (``sentinel`` fills like
    ``previous``; the writer replaces those rows)."""
    b, a, w = placement.before, placement.after, placement.weight
    if policy == "linear":
        lo = values[np.where(b >= 0, b, a)].astype(np.float64)
        hi = values[np.where(a >= 0, a, b)].astype(np.float64)
        return lo + (hi - lo) * w[:, None]
    if policy == "nearest":
        return values[np.where((b >= 0) & ((a < 0) | (w <= 0.5)), b, a)]
    return values[np.where(b >= 0, b, a)]


# --- member tables: a row for every frame ------------------------------------------------------------------


def check_coverage(table, counts: dict[str, int], source: str) -> None:
    """Every table video is in the manifest, every manifest video is in the table, no frame past the end."""
    videos = table.data["video"].unique()
    unknown = [v for v in videos if v not in counts]
    if unknown:
        raise ContractError(f"{source}: manifest misses {len(unknown)} video(s) of the table, first {unknown[0]!r}")
    absent = [v for v in counts if v not in set(videos)]
    if absent:
        raise ContractError(f"{source}: no predictions for {len(absent)} manifest video(s), first {absent[0]!r}")
    last = table.data.groupby("video", sort=False)["frame"].max()
    over = [v for v, f in last.items() if f > counts[v]]
    if over:
        raise ContractError(
            f"{source}: frames past the video's length in {len(over)} video(s), first {over[0]!r} "
            f"(frame {last[over[0]]} of {counts[over[0]]})"
        )


def fill_missing_frames(table, counts: dict[str, int], source: str = "predictions"):
    """A new table with a row for frames 1..n of every video in ``counts`` (videos sorted); returns it and the
    rows added. ``table`` is left as it was.

    Missing rows are interpolated linearly between the neighbouring predicted frames (the nearest one at
    either end, ``fill(..., "linear")``), which keeps probabilities summing to 1.
    """
    import pandas as pd

    from ensemble.contract import KEY, PredictionTable, output_columns

    check_coverage(table, counts, source)
    frames = from_counts(MANIFEST, Path(source), dict(sorted(counts.items())))
    placement = place(table, frames)
    cols = output_columns(table.meta.tasks, table.edition)
    values = fill(table.data[cols].to_numpy(np.float64), placement, "linear").astype(np.float32)
    keys = pd.DataFrame({"video": np.array(frames.videos, dtype=object)[frames.codes], "frame": frames.frames})
    data = pd.concat([keys, pd.DataFrame(values, columns=cols)], axis=1)[KEY + cols]
    extra = {
        **table.meta.extra,
        "filled_frames": int(table.meta.extra.get("filled_frames", 0)) + placement.filled,
        "fill": "linear interpolation between neighbouring frames, nearest at the ends",
    }
    return PredictionTable(data, replace(table.meta, extra=extra)), placement.filled


# --- where a release keeps its face images -------------------------------------------------------------------

FRAME_ROOT = "cropped_aligned"
"""The frame root of every release and of ``crop-faces`` output: ``cropped_aligned/<video>/00001.jpg``. Recent
releases add ``cropped_aligned_new_50_vids/`` for test videos (Byeooon/cvpr_abaw_10th txt.py reads ABAW10's test
frames from both; the 6th ABAW's release too: a gaze script in the public code corpus reads Train_Set frames
from both), so every ``cropped_aligned*`` folder of a dataset is a frame root."""


def frame_roots(root: str | Path) -> list[Path]:
    """The frame roots of a dataset folder: ``cropped_aligned/`` first, then every other ``cropped_aligned*``
    folder in name order."""
    found = sorted(p for p in Path(root).glob(FRAME_ROOT + "*") if p.is_dir())
    return sorted(found, key=lambda p: p.name != FRAME_ROOT)


def video_folders(root: str | Path) -> dict[str, Path]:
    """Each video's frame folder, across the frame roots of ``root``; a video found in two roots is a one-line
    error naming both (which one holds the video's frames cannot be guessed)."""
    folders: dict[str, Path] = {}
    for frame_root in frame_roots(root):
        for folder in sorted(p for p in frame_root.iterdir() if p.is_dir()):
            if folder.name in folders:
                raise DataError(
                    f"video {folder.name!r} has frames in two roots: {folders[folder.name]} and {folder}; "
                    "keep one of them"
                )
            folders[folder.name] = folder
    return folders
