"""What a submission file of each layout looks like; which layout a track of an edition uses is in
``ensemble.tasks.EDITIONS``.

The organisers publish no format page; each layout below is taken from participants' public test scripts
(GitHub repository and path beside it), and the README's edition table names the same sources.
"""

from __future__ import annotations

from dataclasses import dataclass

from ensemble.errors import SubmissionError
from ensemble.tasks import MTL_FILE, PER_VIDEO, TASKS, Edition, get_edition

PER_VIDEO_SOURCES = (
    "kuhnkeF/ABAW2020TNT write_labelfile.py (2020)",
    "ColinWine/Semi-supervised-Facial-Affective-Behavior-Analysis test_val_aff2.py and results/ (2021)",
    "wtomin/ABAW3_MultiEmotionNet MTL/test_static_model.py, Tester_Single_task (2022)",
)
"""Per-video layout: ``<video>.txt`` per test video, header = the annotation header (``valence,arousal``, the
class names, the AU names), then one line per frame of the video in frame order, no image column."""

SINGLE_FILE_SOURCES = (
    "upczww/abaw5 EXPR/test.py, VA/test.py, AU/test.py (2023)",
    "khanhnd185/ABAW5 test.py (2023)",
    "upczww/abaw6 EXPR/test.py, VA/test.py, AU/test.py (2024)",
    "FreedomPuppy77/Charon VA/test.py (2025, ABAW8)",
    "leeyubin10/9th-ABAW generate_result.py (2025, ABAW9: VA, rows of ICCV_9th_ABAW_VA_test_set_sample.txt)",
    "Byeooon/cvpr_abaw_10th txt.py (2026, ABAW10: EXPR, header image_location,Neutral,...,Other)",
    "byeongjin1/abaw10th_imlab-va- inference_test.py (2026, ABAW10: VA, header image_location,valence,arousal)",
    "ora942878/ABAW_10_EXPR pipeline_TEST/Inference_median101_5fold_ensamble.py (2026, ABAW10: EXPR, the sample's rows)",
)
"""Single-file layout: one file per track, header ``image_location,`` + the annotation header, then one row
``video/00001.jpg,<values>`` per image of the organisers' example file, videos in the order of their
video-name list."""

MTL_SOURCES = (
    "wtomin/ABAW3_MultiEmotionNet MTL/test_static_model.py, Tester_MTL (2022, ABAW3)",
    "khanhnd185/MTL-ABAW4 test.py, generate_output (2022, ABAW4)",
    "pr-vsl/abaw7 main.py, CustomWriter (2024, ABAW7)",
)
"""Multi-task layout: one file, header ``image,valence,arousal,expression,aus``, then one row per image of the
organisers' list in list order: ``video/00001.jpg,valence,arousal,expression,au1,...,au12``."""

MTL_HEADER = "image,valence,arousal,expression,aus"
SINGLE_FILE_PREFIX = "image_location,"
PREDICTIONS = "predictions.txt"
"""Name of the one file of the single-file and multi-task layouts (the name participants use; the
organisers' required name is not confirmed, so the validator takes any single .txt)."""

FILLS = ("previous", "nearest", "linear", "sentinel")
"""Policies for frames the prediction table lacks (submissions/fill.py)."""
DEFAULT_FILL = "previous"
"""What participants do: copy the closest earlier predicted frame."""

VALUE_KINDS = {"expr": ("class",), "va": ("float", "float")}
"""Kind of each value of a task on a row: a class index, a float in [-1, 1], or a 0/1 AU bit."""


@dataclass(frozen=True)
class TrackFormat:
    """What a submission of ``track`` for ``edition`` looks like."""

    track: str
    edition: Edition
    layout: str
    header: str
    tasks: tuple[str, ...]  # tasks whose values a row holds, in row order

    @property
    def keyed(self) -> bool:
        """Rows start with the image name (single-file and multi-task layouts)."""
        return self.layout != PER_VIDEO

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kind of each value on a row after the image name."""
        return tuple(k for t in self.tasks for k in VALUE_KINDS.get(t, ("bit",) * len(self.edition.aus)))

    @property
    def width(self) -> int:
        """Values per row after the image name: 1 class index, 2 VA values, one 0/1 per AU (mtl: all)."""
        return len(self.kinds)

    def file_name(self, video: str = "") -> str:
        """The file holding ``video``'s rows."""
        return f"{video}.txt" if self.layout == PER_VIDEO else PREDICTIONS


def check_source(fmt: TrackFormat, source) -> None:
    """The frame source fits the layout: per-video files need every frame 1..n of each video, and an example
    file must be the track's (``check_example_file``)."""
    if fmt.layout == PER_VIDEO and (video := source.incomplete_video()) is not None:
        raise SubmissionError(
            f"{source.path}: per-video files need every frame 1..n of each video in order; the {source.kind} "
            f"lists otherwise for video {video!r} (give a 'video,frames' manifest or a folder of frame folders)"
        )
    check_example_file(fmt, source)


def check_example_file(fmt: TrackFormat, source) -> None:
    """An organisers' example file names its track's columns in its header: one for another track or label
    set is a one-line error, not a silent mix-up."""
    header = getattr(source, "header", None)
    if header is None:
        return
    wanted = SINGLE_FILE_PREFIX + fmt.edition.header(fmt.track) if fmt.track in TASKS else None
    if header != wanted:
        expected = f"its {fmt.track} header is {wanted!r}" if wanted else "it takes the organisers' image list"
        raise SubmissionError(
            f"{source.path}: this example file is for another track or edition (header {header[:80]!r}); "
            f"the {fmt.track} track of {fmt.edition.name}: {expected}"
        )


def get_format(track: str, edition: Edition | int | str) -> TrackFormat:
    """The submission format of ``track`` in ``edition``; a track the edition did not run lists where it ran."""
    ed = edition if isinstance(edition, Edition) else get_edition(edition)
    track = track.strip().lower()
    layout = ed.track_layout(track)
    if layout == MTL_FILE:
        return TrackFormat(track, ed, layout, MTL_HEADER, ("va", "expr", "au"))
    header = ed.header(track) if layout == PER_VIDEO else SINGLE_FILE_PREFIX + ed.header(track)
    return TrackFormat(track, ed, layout, header, (track,))
