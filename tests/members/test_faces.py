"""The pieces of the video path without the detector: alignment, subjects by position, tracking between
searches, the overlay file's ownership stamp."""

import cv2
import numpy as np
import pytest

from ensemble.outputs import is_ours
from members.face.align import TEMPLATE_112, align_face, similarity_transform, template
from members.face.crop import assign_subjects, count_subjects, subject_ids
from members.face.detect import Face
from members.face.plot import missing_runs
from members.face.track import FaceFollower
from members.face.video import VideoWriter, decode_frames


def _similarity(angle_deg, scale, shift):
    a = np.deg2rad(angle_deg)
    rotation = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.column_stack([rotation, shift])


def _apply(matrix, points):
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_similarity_transform_recovers_a_known_one_and_matches_opencv_on_noisy_points():
    rng = np.random.default_rng(0)
    truth = _similarity(23.0, 1.7, [40.0, -12.0])
    src = rng.uniform(0, 200, (5, 2))
    assert np.allclose(similarity_transform(src, _apply(truth, src)), truth, atol=1e-9)
    noisy = _apply(truth, src) + rng.normal(0, 2.0, (5, 2))
    ours = similarity_transform(src, noisy)
    theirs, _ = cv2.estimateAffinePartial2D(src, noisy, method=cv2.LMEDS)  # least squares on the inliers
    assert np.abs(_apply(ours, src) - _apply(theirs, src)).max() < 1.0
    residual = np.abs(_apply(ours, src) - noisy).mean()
    assert residual <= np.abs(_apply(theirs, src) - noisy).mean() + 1e-6


def test_a_mirror_image_is_fitted_by_a_rotation_not_a_reflection():
    src = TEMPLATE_112
    mirrored = src * [-1, 1] + [112, 0]
    matrix = similarity_transform(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_align_face_puts_the_landmarks_on_the_template():
    """Five dots drawn where a rotated, scaled, shifted face has its landmarks land on the template."""
    face_to_frame = _similarity(-17.0, 2.3, [210.0, 95.0])
    landmarks = _apply(face_to_frame, TEMPLATE_112)
    frame = np.zeros((480, 640, 3), np.uint8)
    for x, y in landmarks:
        cv2.circle(frame, (round(x), round(y)), 6, (255, 255, 255), -1)
    for size in (112, 224):
        crop = align_face(frame, landmarks, size)
        assert crop.shape == (size, size, 3)
        n, _, stats, centres = cv2.connectedComponentsWithStats((crop[:, :, 0] > 127).astype(np.uint8))
        found = centres[1:][np.argsort(centres[1:, 1] * 1000 + centres[1:, 0])]  # top to bottom, left to right
        expected = template(size)[np.argsort(template(size)[:, 1] * 1000 + template(size)[:, 0])]
        assert n - 1 == 5 and np.abs(found - expected).max() < 1.0


def _face(x, width=80.0, score=0.99):
    box = np.array([x - width / 2, 100.0, x + width / 2, 100.0 + width])
    return Face(box, np.tile([x, 140.0], (5, 1)), score)


def test_two_people_become_left_and_right_by_position():
    frames = [[_face(500), _face(100, 120)] for _ in range(8)]  # largest first, as the detector returns them
    frames += [[_face(480)], [_face(130)], []]
    assert count_subjects(frames, 2) == 2
    left, right = assign_subjects(frames, 2)
    assert all(left[n].centre_x < 200 and right[n].centre_x > 400 for n in range(1, 9))
    assert 9 in right and 9 not in left and 10 in left and 10 not in right and 11 not in left | right
    assert subject_ids("10-60-1280x720", 2) == ["10-60-1280x720_left", "10-60-1280x720_right"]


def test_a_face_on_few_frames_is_not_a_second_subject():
    frames = [[_face(300)] for _ in range(9)] + [[_face(300), _face(50, 30)]]
    assert count_subjects(frames, 2) == 1
    (only,) = assign_subjects(frames, 1)
    assert len(only) == 10 and only[10].centre_x == 300  # the largest face of the crowded frame
    assert count_subjects([[], []], 2) == 0 and assign_subjects([[], []], 0) == []


def test_faces_are_searched_every_k_frames_and_tracked_in_between():
    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (400, 600), dtype=np.uint8), (5, 5), 0)
    calls = []

    def detector(frame):
        calls.append(len(calls))
        return [_face(200.0 + 3 * len(followed_frames))]

    followed_frames = []
    follower = FaceFollower(detector, every=5)
    for k in range(12):  # the scene slides 3 pixels right per frame
        shifted = np.roll(texture, 3 * k, axis=1)
        faces, searched = follower(np.dstack([shifted] * 3))
        followed_frames.append((faces[0], searched))
    assert [s for _, s in followed_frames] == [k % 5 == 0 for k in range(12)]
    for k, (face, _) in enumerate(followed_frames):
        assert abs(face.centre_x - (200.0 + 3 * k)) < 1.0
        assert abs(face.landmarks[0, 0] - (200.0 + 3 * k)) < 1.0


def test_missing_runs():
    assert missing_runs({3, 4, 7}, 8) == [(1, 2), (5, 6), (8, 8)]
    assert missing_runs(set(range(1, 5)), 4) == []


def test_written_videos_carry_the_stamp_that_force_looks_for(tmp_path):
    import av

    ours, foreign = tmp_path / "ours.mp4", tmp_path / "foreign.mp4"
    frames = [np.full((61, 81, 3), 20 * k, np.uint8) for k in range(5)]  # odd sides: cropped to even
    with VideoWriter(ours, 25) as writer:
        for frame in frames:
            writer.write(frame)
    with av.open(str(foreign), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 80, 60, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame[:60, :80], format="rgb24")))
        container.mux(stream.encode(None))
    decoded = list(decode_frames(ours))
    assert len(decoded) == 5 and decoded[0].shape == (60, 80, 3)
    assert is_ours(ours) and not is_ours(foreign) and not is_ours(tmp_path / "missing.mp4")


@pytest.mark.parametrize("quarter", [1, 3])
def test_rotated_recordings_are_turned_upright(tmp_path, quarter):
    """A phone's portrait video: landscape frames with a display rotation; frames come out as shown."""
    import av

    path = tmp_path / "phone.mp4"
    frame = np.zeros((64, 96, 3), np.uint8)
    frame[:8, :8] = 255  # a white top-left corner
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.set_display_rotation(90 * quarter)
        container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    (upright,) = decode_frames(path)
    expected = np.rot90(frame, quarter)
    assert upright.shape == expected.shape
    assert np.abs(upright.astype(int) - expected).mean() < 10
