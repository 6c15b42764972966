"""The stacker's training stride: the rule that picks it, the frames it keeps, and a fit that uses it."""

import numpy as np
import pytest
from helpers import simulated_stack
from scipy.ndimage import gaussian_filter1d

from ensemble.fusion import create_fuser
from ensemble.fusion.stack import STRIDE_MIN_FRAMES, lag_autocorrelation, strided, temporal_stride


def _outputs(videos: int, frames: int, slow_sigma: float, noise: float, seed: int = 0):
    """(members=3, frames, k=2) outputs: a slow part smoothed over ``slow_sigma`` frames (shared by the
    members) plus noise that changes every frame, and the video codes."""
    rng = np.random.default_rng(seed)
    slow = rng.normal(size=(videos, frames, 2))
    if slow_sigma:
        slow = gaussian_filter1d(slow, slow_sigma, axis=1)
        slow /= slow.std()
    slow = slow.reshape(-1, 2)
    values = np.stack([slow + noise * rng.normal(size=slow.shape) for _ in range(3)])
    return values, np.repeat(np.arange(videos), frames)


def test_lag_autocorrelation_stays_within_videos():
    codes = np.repeat([0, 1], 4)
    ramp = np.r_[np.arange(4.0), 10 + np.arange(4.0)][None, :, None]  # the jump from 3 to 10 would decorrelate
    assert lag_autocorrelation(ramp, codes, 1) == pytest.approx(1.0)
    assert np.isnan(lag_autocorrelation(ramp, codes, 4))  # no two frames 4 apart in one video


def test_stride_grows_with_how_long_the_outputs_persist():
    n = 200 * 1000
    strides = [temporal_stride(*_outputs(200, 1000, sigma, 0.7), n) for sigma in (0, 2, 8, 30)]
    assert strides[0] == 1  # frame-independent outputs: every frame is news
    assert strides == sorted(strides) and strides[-1] > strides[1] > 1, strides


def test_noise_that_changes_every_frame_does_not_shorten_the_stride():
    n = 200 * 1000
    clean = temporal_stride(*_outputs(200, 1000, 8, 0.0), n)
    noisy = temporal_stride(*_outputs(200, 1000, 8, 1.5), n)
    assert noisy == clean > 1


def test_stride_leaves_enough_training_frames():
    values, codes = _outputs(200, 1000, 30, 0.3)
    assert temporal_stride(values, codes, n_train=len(codes)) > 3
    assert temporal_stride(values, codes, n_train=3 * STRIDE_MIN_FRAMES) <= 3
    assert temporal_stride(values, codes, n_train=STRIDE_MIN_FRAMES) == 1  # the demo's few frames: all of them
    assert temporal_stride(values, codes, n_train=len(codes), min_frames=len(codes) // 2) <= 2  # EXPR's floor


def test_strided_takes_every_nth_frame_of_each_video_from_its_first():
    codes = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    assert strided(codes, 2).tolist() == [0, 2, 4, 5, 7, 9]
    assert strided(codes, 1).tolist() == list(range(len(codes)))
    assert set(codes[strided(codes, 100)]) == {0, 1, 2}  # every video keeps a frame


def test_a_strided_stack_learns_from_fewer_frames_and_predicts_every_frame(monkeypatch):
    import ensemble.fusion.stack as stack_module

    stack, truths, _ = simulated_stack(videos=6, frames=100)
    sizes = []
    train = stack_module.StackingFuser._train

    def spy(self, x, y, *args):
        sizes.append(len(y))
        return train(self, x, y, *args)

    monkeypatch.setattr(stack_module.StackingFuser, "_train", spy)
    monkeypatch.setattr(stack_module, "temporal_stride", lambda values, codes, n_train, least: 4)  # as on long videos
    fuser = create_fuser("stack", rounds=30, folds=3).fit(stack, truths)
    assert fuser.strides_ == {"expr": 4, "va": 4, "au": 4}
    refits = sizes[3::4]  # each model: 3 folds, then the refit on all its training frames
    assert max(refits) <= len(truths["va"].rows) / 4 + 6  # a frame per video more at most
    assert not np.isnan(fuser.oof_).any()  # out-of-fold outputs on every frame, not only the strided ones
    assert fuser.predict(stack).shape == (len(stack.keys), len(stack.columns))


def test_the_default_stride_is_chosen_per_task_and_is_1_on_few_frames():
    stack, truths, _ = simulated_stack(videos=6, frames=100)
    fuser = create_fuser("stack", rounds=30, folds=3).fit(stack, truths)
    assert fuser.strides_ == {"expr": 1, "va": 1, "au": 1}
