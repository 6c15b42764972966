"""Procedurally drawn face-like images whose features follow a frame's expression, valence, arousal and AUs.

Each action unit moves the part of the face it moves in FACS (brows, lids, cheeks, lips, jaw), valence
bends the mouth and arousal opens the eyes, so a CNN can learn every task from the pixels. Identity,
pose, lighting and pixel noise vary, so it has to generalise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DRAW = 96  # faces are drawn at this size, then resized (anti-aliasing for free)

AUS_ALL = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU20", "AU23", "AU24", "AU25", "AU26")
"""Every action unit the generator simulates (the union of the 8- and 12-AU label sets)."""


@dataclass(frozen=True)
class Identity:
    """What stays fixed within a video: the person and the camera."""

    skin: tuple[int, int, int]
    width: float  # face half-width as a share of the image
    eye_gap: float
    background: int

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Identity:
        tone = rng.uniform(0.35, 1.0)
        skin = (int(120 + 120 * tone), int(80 + 110 * tone), int(60 + 90 * tone))
        return cls(skin, rng.uniform(0.28, 0.36), rng.uniform(0.15, 0.2), int(rng.integers(30, 200)))


@dataclass(frozen=True)
class FaceState:
    """One frame's affect (AU intensities in [0, 1] keyed by name) and nuisance (pose, light)."""

    valence: float
    arousal: float
    au: dict[str, float]
    other: float  # intensity of the 'Other' expression's own cue (a lopsided mouth)
    dx: float
    dy: float
    angle: float
    light: float


def _brows(draw: ImageDraw.ImageDraw, s: FaceState, cx: float, eye_y: float, gap: float) -> None:
    raise_inner = 7 * s.au["AU1"] + 2 * s.arousal
    raise_outer = 7 * s.au["AU2"] + 2 * s.arousal
    lower = 6 * s.au["AU4"]
    for side in (-1, 1):
        inner_x, outer_x = cx + side * 0.25 * gap, cx + side * 1.35 * gap
        inner_y = eye_y - 12 - raise_inner + lower
        outer_y = eye_y - 12 - raise_outer + 0.4 * lower
        draw.line([(inner_x, inner_y), (outer_x, outer_y)], fill=(50, 35, 25), width=4)


def _eyes(draw: ImageDraw.ImageDraw, s: FaceState, cx: float, eye_y: float, gap: float) -> None:
    openness = 4.5 + 2.5 * s.arousal + 2.5 * max(s.au["AU1"], s.au["AU2"]) - 2.5 * s.au["AU7"] - 1.5 * s.au["AU6"]
    openness = max(openness, 0.8)
    for side in (-1, 1):
        x = cx + side * 0.8 * gap
        draw.ellipse([x - 8, eye_y - openness, x + 8, eye_y + openness], fill=(245, 245, 240))
        draw.ellipse([x - 3, eye_y - min(openness, 3), x + 3, eye_y + min(openness, 3)], fill=(30, 20, 15))
        if s.au["AU6"] > 0.05:  # raised cheeks: a blush under each eye
            r = 7 * s.au["AU6"]
            draw.ellipse([x - r, eye_y + 10 - r / 2, x + r, eye_y + 10 + r / 2], fill=(200, 90, 90))


def _mouth(draw: ImageDraw.ImageDraw, s: FaceState, cx: float, mouth_y: float) -> None:
    half = 14 + 6 * s.au["AU20"] + 3 * s.au["AU12"] - 4 * s.au["AU23"] - 3 * s.au["AU24"]
    curve = 7 * s.au["AU12"] - 7 * s.au["AU15"] + 4 * s.valence  # corners up (+) or down (-)
    tilt = 6 * s.other
    opening = 2 * s.au["AU25"] + 9 * s.au["AU26"] + 2 * max(s.arousal, 0)
    thickness = max(4 - 3 * s.au["AU24"] - 2 * s.au["AU23"], 1)
    xs = np.linspace(-half, half, 15)
    bend = curve * (xs / half) ** 2
    upper = [(cx + x, mouth_y - b - 3 * s.au["AU10"] + tilt * x / half) for x, b in zip(xs, bend)]
    lower = [(cx + x, mouth_y - b + opening * (1 - (x / half) ** 2) + tilt * x / half) for x, b in zip(xs, bend)]
    if opening > 1:
        draw.polygon(upper + lower[::-1], fill=(70, 20, 25))
    draw.line(upper, fill=(150, 50, 55), width=int(round(thickness)))
    draw.line(lower, fill=(150, 50, 55), width=int(round(thickness)))


def draw_face(s: FaceState, who: Identity, size: int, rng: np.random.Generator) -> Image.Image:
    """A ``size`` x ``size`` RGB face for one frame."""
    img = Image.new("RGB", (DRAW, DRAW), (who.background,) * 3)
    draw = ImageDraw.Draw(img)
    cx, cy = DRAW / 2, DRAW / 2
    hw, hh = who.width * DRAW, 0.42 * DRAW
    draw.ellipse([cx - hw, cy - hh, cx + hw, cy + hh], fill=who.skin)
    gap = who.eye_gap * DRAW
    eye_y = cy - 0.12 * DRAW
    _brows(draw, s, cx, eye_y, gap)
    _eyes(draw, s, cx, eye_y, gap)
    draw.line([(cx, eye_y + 6), (cx - 3, cy + 8), (cx + 2, cy + 9)], fill=(110, 70, 55), width=2)
    _mouth(draw, s, cx, cy + 0.22 * DRAW)
    img = img.rotate(s.angle, resample=Image.BILINEAR, translate=(s.dx, s.dy), fillcolor=(who.background,) * 3)
    img = img.filter(ImageFilter.GaussianBlur(0.6)).resize((size, size), Image.BILINEAR)
    return _light_and_noise(img, s.light, rng)


def _light_and_noise(img: Image.Image, light: float, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32)
    ramp = np.linspace(1 - 0.25 * light, 1 + 0.25 * light, arr.shape[1], dtype=np.float32)
    arr = arr * ramp[None, :, None] + rng.normal(0, 9, arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
