"""A self-contained HTML page of a video's per-frame predictions: expression probabilities, valence and
arousal, action units, one figure per subject, frames without the subject's face shaded. The figures are
matplotlib PNGs embedded as data URIs, so the page opens anywhere with nothing beside it."""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from ensemble.outputs import STAMP
from ensemble.tasks import Edition


def missing_runs(found: set[int], frames: int) -> list[tuple[int, int]]:
    """(first, last) frame numbers of each run of frames not in ``found``.

    >>> missing_runs({3, 4, 7}, 8)
    [(1, 2), (5, 6), (8, 8)]
    """
    runs, start = [], None
    for number in range(1, frames + 1):
        if number not in found and start is None:
            start = number
        if number in found and start is not None:
            runs.append((start, number - 1))
            start = None
    return runs + ([(start, frames)] if start is not None else [])


def _panel(ax, task: str, frames: np.ndarray, values: np.ndarray, edition: Edition) -> None:
    names = edition.label_names(task)
    if task == "expr":
        ax.stackplot(frames, values.T, labels=names, alpha=0.9)
        ax.set_ylim(0, 1)
        ax.set_ylabel("expression")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    elif task == "va":
        for j, name in enumerate(names):
            ax.plot(frames, values[:, j], label=name)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylabel("valence, arousal")
        ax.set_ylim(-1.05, 1.05)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    else:
        ax.imshow(values.T, aspect="auto", cmap="Blues", vmin=0, vmax=1, interpolation="nearest",
                  extent=(frames[0] - 0.5, frames[-1] + 0.5, len(names) - 0.5, -0.5))  # fmt: skip
        ax.set_yticks(range(len(names)), names, fontsize=7)


def subject_figure(subject: str, values: dict[str, np.ndarray], edition: Edition, gaps: list[tuple[int, int]]) -> str:
    """Base64 PNG of one subject's curves, a panel per task, the frames without a face shaded."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, nothing global

    frames = np.arange(1, len(next(iter(values.values()))) + 1)
    fig = Figure(figsize=(12, 2.6 * len(values)))
    axes = fig.subplots(len(values), 1, sharex=True, squeeze=False)
    for ax, (task, array) in zip(axes[:, 0], values.items()):
        _panel(ax, task, frames, array, edition)
        for first, last in gaps:
            ax.axvspan(first - 0.5, last + 0.5, color="grey", alpha=0.3, lw=0)
    axes[0, 0].set_title(f"{subject}: per-frame predictions (grey: no face found, values filled)")
    axes[-1, 0].set_xlabel("frame")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plot_html(prediction) -> str:
    """The page for a ``VideoPrediction``."""
    table, faces = prediction.table, prediction.faces
    edition = table.edition
    parts = []
    for subject, rows in table.data.groupby("video", sort=False):
        values = {t: rows[edition.output_columns(t)].to_numpy() for t in table.meta.tasks}
        track = faces.subjects[subject]
        png = subject_figure(subject, values, edition, missing_runs(set(track), faces.frames))
        parts.append(
            f"<h2>{html.escape(subject)}</h2><p>face found on {len(track)} of {faces.frames} frames</p>"
            f'<img alt="{html.escape(subject)}" src="data:image/png;base64,{png}">'
        )
    title = html.escape(f"{faces.video}: predictions per frame")
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><meta name="generator" content="{STAMP}">'
        f"<title>{title}</title></head><body><h1>{title}</h1>"
        f"<p>{html.escape(str(faces.path))}: {faces.frames} frames at {float(faces.rate):.2f} frames/s; "
        f"predictions of {html.escape(table.meta.member)}</p>" + "".join(parts) + "</body></html>\n"
    )
