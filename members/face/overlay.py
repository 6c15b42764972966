"""Predictions drawn on video frames: each face's box and expression, and a valence/arousal disc per subject.

A prediction is a mapping of contract columns (``expr_<class>``, ``valence``, ``arousal``, ``au<k>``) to
values, as in a prediction table's row. Subjects are coloured in order (left to right); frames where a
subject's face was not found keep its disc, greyed, with the filled values.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

COLOURS = ((60, 220, 90), (255, 160, 40), (80, 170, 255), (230, 80, 200))  # RGB per subject
GREY = (150, 150, 150)
FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def expression(prediction: Mapping[str, float]) -> str:
    """'Happiness 93%' from the expression probabilities ('' without them)."""
    probs = {k: v for k, v in prediction.items() if k.startswith("expr_")}
    if not probs:
        return ""
    best = max(probs, key=probs.get)
    return f"{best[5:].capitalize()} {100 * probs[best]:.0f}%"


def active_units(prediction: Mapping[str, float]) -> str:
    """'AU6 AU12' for the action units with probability of at least 0.5."""
    return " ".join(k.upper() for k, v in prediction.items() if k.startswith("au") and v >= 0.5)


def _text(image: np.ndarray, text: str, x: int, y: int, scale: float, colour, above: bool = False) -> None:
    """Text with a dark backing box, its top-left corner at (x, y) (its bottom-left if ``above``), kept
    inside the image."""
    import cv2

    thick = max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, FONT, scale, thick)
    y = y - h - base - 4 if above else y
    x = int(min(max(x, 0), max(image.shape[1] - w - 4, 0)))
    y = int(min(max(y, 0), max(image.shape[0] - h - base - 4, 0)))
    cv2.rectangle(image, (x, y), (x + w + 4, y + h + base + 4), (0, 0, 0), -1)
    cv2.putText(image, text, (x + 2, y + h + 2), FONT, scale, colour, thick, cv2.LINE_AA)


def draw_box(image: np.ndarray, box: np.ndarray, prediction: Mapping[str, float], colour, scale: float) -> None:
    """The face's box, its expression above it and its active action units below."""
    import cv2

    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(image, (x1, y1), (x2, y2), colour, max(2, round(scale * 3)), cv2.LINE_AA)
    if expression(prediction):
        _text(image, expression(prediction), x1, y1 - 2, scale, colour, above=True)
    if active_units(prediction):
        _text(image, active_units(prediction), x1, y2 + 2, scale * 0.8, colour)


def draw_va(image: np.ndarray, valence: float, arousal: float, corner: tuple[int, int], side: int, colour) -> None:
    """The valence (x) / arousal (y) plane as a disc of radius 1 in a square, the prediction as a dot."""
    import cv2

    x0, y0 = corner
    patch = image[y0 : y0 + side, x0 : x0 + side]
    patch[:] = (patch * 0.35).astype(np.uint8)  # darken under the panel so it reads on any frame
    c, r = side // 2, side // 2 - 4
    cv2.circle(image, (x0 + c, y0 + c), r, (200, 200, 200), 1, cv2.LINE_AA)
    cv2.line(image, (x0 + 4, y0 + c), (x0 + side - 4, y0 + c), (120, 120, 120), 1)
    cv2.line(image, (x0 + c, y0 + 4), (x0 + c, y0 + side - 4), (120, 120, 120), 1)
    dot = (x0 + c + round(r * float(np.clip(valence, -1, 1))), y0 + c - round(r * float(np.clip(arousal, -1, 1))))
    cv2.circle(image, dot, max(3, side // 18), colour, -1, cv2.LINE_AA)
    _text(image, f"V {valence:+.2f} A {arousal:+.2f}", x0, y0 + side + 2, side / 260, colour)


def draw_subject(image: np.ndarray, slot: int, face_box: np.ndarray | None, prediction: Mapping[str, float]) -> None:
    """One subject on ``image`` (in place): box and labels where its face was found, and its VA disc in a
    top corner (subject 1 left, 2 right, 3 left below, ...)."""
    h, w = image.shape[:2]
    scale = max(h, 360) / 720
    colour = COLOURS[slot % len(COLOURS)] if face_box is not None else GREY
    if face_box is not None:
        draw_box(image, face_box, prediction, colour, scale)
    side = max(64, h // 5)
    x, y = (8 if slot % 2 == 0 else w - side - 8), 8 + (slot // 2) * (side + round(90 * scale))
    if "valence" in prediction:
        draw_va(image, prediction["valence"], prediction["arousal"], (x, y), side, colour)
        y += side + round(30 * scale)
    if face_box is None and expression(prediction):
        _text(image, f"no face: {expression(prediction)}", x, y, scale * 0.8, colour)


def draw_fps(image: np.ndarray, fps: float) -> None:
    _text(image, f"{fps:.1f} fps", image.shape[1] // 2 - 40, 8, max(image.shape[0], 360) / 900, (255, 255, 255))


def draw_frame(
    frame: np.ndarray, subjects: list[tuple[np.ndarray | None, Mapping[str, float]]], fps: float | None = None
) -> np.ndarray:
    """A copy of ``frame`` with every subject's (box or None, prediction) drawn, and the FPS if given."""
    image = np.ascontiguousarray(frame).copy()
    for slot, (box, prediction) in enumerate(subjects):
        draw_subject(image, slot, box, prediction)
    if fps is not None:
        draw_fps(image, fps)
    return image


def subject_values(table) -> dict[str, tuple[list[str], np.ndarray]]:
    """Per video id of a filled prediction table: its output columns and (frames, columns) values, row
    ``n - 1`` holding frame ``n``."""
    columns = [c for c in table.data.columns if c not in ("video", "frame")]
    return {video: (columns, rows[columns].to_numpy()) for video, rows in table.data.groupby("video", sort=False)}


def write_overlay(prediction, path, progress=None) -> int:
    """The video of ``prediction`` (a ``VideoPrediction``) with its predictions drawn, as an MP4 at
    ``path``; returns the frames written."""
    from members.face.video import VideoWriter, decode_frames

    faces = prediction.faces
    values = subject_values(prediction.table)
    with VideoWriter(path, faces.rate) as writer:
        for number, frame in enumerate(decode_frames(faces.path, faces.frames), 1):
            subjects = []
            for subject, track in faces.subjects.items():
                columns, rows = values[subject]
                face = track.get(number)
                subjects.append((None if face is None else face.box, dict(zip(columns, rows[number - 1]))))
            writer.write(draw_frame(frame, subjects))
            if progress:
                progress(number, faces.frames)
    return faces.frames
