"""Drawn faces in the layouts of image and clip challenges, with the hidden truth of their test split.

- ``kaggle``: ``train/<class>/`` with the 9 classes of the skillbox Kaggle challenge, a flat unlabelled
  ``test_kaggle/`` and the organisers' ``sample_submission.csv`` (``image_path,emotion``: bare file names, one
  class name on every row), as lugrenl/Emotion-Recognition_model's ``Models_Training.ipynb`` reads and writes
  them; the truth in ``test_truth.csv`` (same columns).
- ``fer``: FER2013 as class folders ``0``..``6`` (``train/``, ``test/`` labelled).
- ``clips``: EmotiW-style ``<split>/<Class>/<clip>/<frames>`` with the 7 classes of XiaoYee/emotion_classification's
  ``classInd.txt``; ``test/`` per class.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from members.synthetic.dataset import EXPR_PROFILE
from members.synthetic.faces import AUS_ALL, FaceState, Identity, draw_face

KAGGLE_CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise", "uncertain")
EMOTIW_CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
FER_DIGITS = tuple(str(i) for i in range(7))
FER_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # FER2013's order of 0..6
KINDS = ("images", "fer", "clips")

# Each class drawn as an ABAW prototype (valence, arousal, AUs); contempt and uncertain have their own cues.
LOOKS = {
    "anger": "Anger", "angry": "Anger", "contempt": "Other", "disgust": "Disgust", "fear": "Fear",
    "happy": "Happiness", "neutral": "Neutral", "sad": "Sadness", "surprise": "Surprise", "uncertain": "Uncertain",
}  # fmt: skip
NOISE = 0.07
"""Spread of each action unit's intensity around its class's prototype: small, so that a tiny network tells the
nine classes apart after a few epochs on a CPU (the drawn faces are a test bed, not a benchmark)."""
UNCERTAIN = (0.0, 0.3, {"AU2": 0.9, "AU20": 0.9, "AU24": 0.5})  # raised outer brows, stretched lips


def profile(name: str) -> tuple[float, float, dict[str, float]]:
    look = LOOKS[name.lower()]
    return UNCERTAIN if look == "Uncertain" else EXPR_PROFILE[look]


def face_of(name: str, rng: np.random.Generator, who: Identity | None = None) -> FaceState:
    """One face showing class ``name``, with noisy intensities and a random pose and light."""
    valence, arousal, aus = profile(name)
    au = {a: float(np.clip(aus.get(a, 0.05) + rng.normal(0, NOISE), 0, 1)) for a in AUS_ALL}
    other = 1.0 if LOOKS[name.lower()] == "Other" else 0.0
    pose = rng.normal(0, 1, 3) * [2, 2, 5]
    return FaceState(valence, arousal, au, other, pose[0], pose[1], pose[2], rng.uniform(-1, 1))


def draw(name: str, rng: np.random.Generator, size: int, who: Identity | None = None):
    return draw_face(face_of(name, rng), who or Identity.sample(rng), size, rng)


def _write_class_images(folder: Path, names: list[str], looks: list[str], rng, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for file, look in zip(names, looks):
        draw(look, rng, size).save(folder / file, quality=92)


def write_kaggle(root: Path, per_class: int, test: int, size: int, rng: np.random.Generator) -> dict:
    for c in KAGGLE_CLASSES:
        _write_class_images(
            root / "train" / c, [f"{c}_{i:04d}.jpg" for i in range(per_class)], [c] * per_class, rng, size
        )
    truth = rng.choice(KAGGLE_CLASSES, size=test)
    names = [f"{rng.integers(10**9):09d}_{i}.jpg" for i in range(test)]
    _write_class_images(root / "test_kaggle", names, list(truth), rng, size)
    order = rng.permutation(test)  # the organisers list the test files in their own order
    sample = pd.DataFrame({"image_path": np.array(names)[order], "emotion": KAGGLE_CLASSES[5]})
    sample.to_csv(root / "sample_submission.csv", index=False)
    pd.DataFrame({"image_path": np.array(names)[order], "emotion": truth[order]}).to_csv(
        root / "test_truth.csv", index=False
    )
    return {"classes": list(KAGGLE_CLASSES), "train": per_class * len(KAGGLE_CLASSES), "test": test}


def write_fer(root: Path, per_class: int, test: int, size: int, rng: np.random.Generator) -> dict:
    for split, count in (("train", per_class), ("test", max(test // 7, 1))):
        for digit, name in zip(FER_DIGITS, FER_NAMES):
            files = [f"{split}_{digit}_{i:04d}.png" for i in range(count)]
            _write_class_images(root / split / digit, files, [name] * count, rng, size)
    return {
        "classes": list(FER_DIGITS),
        "names": list(FER_NAMES),
        "train": per_class * 7,
        "test": 7 * max(test // 7, 1),
    }


def write_clip(folder: Path, name: str, frames: int, rng: np.random.Generator, size: int) -> None:
    """A clip of one person showing ``name`` with varying intensity and pose."""
    folder.mkdir(parents=True, exist_ok=True)
    who = Identity.sample(rng)
    for i in range(frames):
        draw_face(face_of(name, rng), who, size, rng).save(folder / f"{i + 1:03d}.jpg", quality=92)


def write_clips(root: Path, per_class: int, test: int, size: int, rng: np.random.Generator, frames: int = 6) -> dict:
    counts = {"train": per_class, "val": max(per_class // 2, 1), "test": max(test // 7, 1)}
    for split, count in counts.items():
        for c in EMOTIW_CLASSES:
            for i in range(count):
                write_clip(root / split / c / f"{split}_{c}_{i:03d}", c, frames, rng, size)
    return {"classes": list(EMOTIW_CLASSES), **{s: n * 7 for s, n in counts.items()}, "frames": frames}


def make_image_dataset(
    out: str | Path, kind: str, *, seed: int = 0, per_class: int = 20, test: int = 60, size: int = 48,
    progress: Callable[[int, int], None] | None = None,
) -> dict:  # fmt: skip
    """Write drawn faces in the ``kind`` layout (``KINDS``) under ``out``; returns a summary."""
    writer = {"images": write_kaggle, "fer": write_fer, "clips": write_clips}[kind]
    summary = writer(Path(out), per_class, test, size, np.random.default_rng(seed))
    if progress:
        progress(1, 1)
    return {"kind": kind, **summary}
