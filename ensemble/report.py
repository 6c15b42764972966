"""A self-contained HTML report of a demo-layout run folder: scores, confusion matrix, VA over time,
correlation of members' errors, per-AU F1 before and after tuned thresholds. Plots are matplotlib PNGs
embedded as data URIs, so the file opens anywhere with nothing beside it."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from ensemble.align import Stack, align
from ensemble.contract import read_table
from ensemble.errors import DataError
from ensemble.evaluate import Truth, truths_for
from ensemble.labels import read_labels
from ensemble.metrics import binary_f1_per_unit
from ensemble.outputs import STAMP, atomic_file
from ensemble.pipeline import Fusion, task_slices
from ensemble.tasks import DEFAULT_EDITION, TASKS, Edition, get_edition

GENERATOR = f'<meta name="generator" content="{STAMP}">'


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def score_bars(rows: list[dict]) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, task in zip(axes, TASKS):
        names = [r["name"].replace(" (out-of-fold)", "") for r in rows]
        ax.barh(names, [r.get(f"{task}_score", np.nan) for r in rows], color="tab:blue")
        ax.set_title(f"{task.upper()} score (validation, tuned rows out-of-fold)", fontsize=9)
        ax.invert_yaxis()
        ax.tick_params(labelleft=ax is axes[0])  # the same rows in every panel: label them once
    return _png(fig)


def confusion(edition: Edition, truth: Truth, outputs: np.ndarray, title: str) -> str:
    import matplotlib.pyplot as plt

    k = len(edition.expr_classes)
    cm = np.zeros((k, k))
    np.add.at(cm, (truth.values.astype(int), outputs[truth.rows].argmax(1)), 1)
    cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), edition.expr_classes, rotation=45, ha="right")
    ax.set_yticks(range(k), edition.expr_classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=7)
    return _png(fig)


def va_over_time(stack: Stack, truth: Truth, member: int, fused: np.ndarray, videos: int = 2) -> str:
    import matplotlib.pyplot as plt

    codes = stack.video_codes()
    va = stack.task_values("va")[member]
    full_truth = np.full(len(codes), np.nan)
    full_truth[truth.rows] = truth.values[:, 0]
    fig, axes = plt.subplots(videos, 1, figsize=(12, 3 * videos), squeeze=False)
    for ax, code in zip(axes[:, 0], range(videos)):
        rows = np.flatnonzero(codes == code)
        frames = stack.keys["frame"].to_numpy()[rows]
        ax.plot(frames, full_truth[rows], "k", label="truth")
        ax.plot(frames, va[rows, 0], alpha=0.7, label=f"best member ({stack.members[member]})")
        ax.plot(frames, fused[rows, 0], label="fused")
        ax.set_title(f"valence over time: {stack.keys['video'].iloc[rows[0]]}")
        ax.set_ylim(-1.05, 1.05)
        ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def error_correlation(stack: Stack, truth: Truth) -> str:
    import matplotlib.pyplot as plt

    errors = stack.task_values("va")[:, truth.rows, 0] - truth.values[None, :, 0]
    corr = np.corrcoef(errors)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    im = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(stack.members)), stack.members, rotation=45, ha="right")
    ax.set_yticks(range(len(stack.members)), stack.members)
    for i in range(len(corr)):
        for j in range(len(corr)):
            ax.text(j, i, f"{corr[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_title("correlation of members' valence errors")
    fig.colorbar(im)
    return _png(fig)


def au_thresholds(edition: Edition, truth: Truth, before: np.ndarray, after: np.ndarray) -> str:
    import matplotlib.pyplot as plt

    f1_before = binary_f1_per_unit(truth.values, before[truth.rows] >= 0.5)
    f1_after = binary_f1_per_unit(truth.values, after[truth.rows] >= 0.5)
    x = np.arange(len(edition.aus))
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(x - 0.2, f1_before, 0.4, label="threshold 0.5")
    ax.bar(x + 0.2, f1_after, 0.4, label="smoothing + tuned thresholds")
    ax.set_xticks(x, edition.aus)
    ax.set_ylabel("F1 (validation)")
    ax.legend()
    ax.set_title("per-AU F1 before and after post-processing")
    return _png(fig)


def _table_html(rows: list[dict], title: str) -> str:
    keys = [k for k in rows[0] if k.endswith("_score") or k in ("expr_f1", "au_f1", "va_ccc_valence", "va_ccc_arousal")]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        "<tr><td>"
        + html.escape(r["name"])
        + "</td>"
        + "".join(f"<td>{r.get(k, float('nan')):.4f}</td>" for k in keys)
        + "</tr>"
        for r in rows
    )
    notes = "".join(
        f"<li>{html.escape(r['name'].split(' ')[0])} post-processing {html.escape(r['post'])}</li>"
        for r in rows
        if "post" in r
    )
    notes = f"<ul>{notes}</ul>" if notes else ""
    return f"<h2>{html.escape(title)}</h2><table><tr><th>predictions</th>{head}</tr>{body}</table>{notes}"


def build_report(run_dir: str | Path, edition_year: int = DEFAULT_EDITION) -> str:
    """HTML text of the report of a run folder laid out like the demo's."""
    run = Path(run_dir)
    if not (run / "scores.json").is_file():
        raise DataError(f"{run}: no scores.json (run affect-ens demo --out {run} first)")
    edition = get_edition(edition_year)
    scores = json.loads((run / "scores.json").read_text())
    fusion = Fusion.load(run / "fusions" / "average.json")
    val = align([read_table(run / "predictions" / f"{m}_val.parquet") for m in fusion.fuser.members_])
    truths = truths_for(val.keys, {t: read_labels(run / "data", t, "val", edition) for t in TASKS}, edition)
    raw, post = fusion.fuser.predict(val), fusion.apply(val)
    s = task_slices(val)
    best = int(np.argmax([r["va_score"] for r in scores["val"][: len(val.members)]]))
    images = {
        "Scores of members and fusions": score_bars(scores["val"]),
        "EXPR confusion matrix (tuned average + post on validation, in-sample)": confusion(
            edition, truths["expr"], post[:, s["expr"]], "average + post"
        ),
        "Valence over time (validation; fused = tuned average + post, in-sample)": va_over_time(
            val, truths["va"], best, post[:, s["va"]]
        ),
        "Why fusion helps: members' errors are only partly correlated": error_correlation(val, truths["va"]),
        "Per-AU F1 before and after smoothing and thresholds (validation, in-sample; out-of-fold numbers are in the table)": au_thresholds(
            edition, truths["au"], raw[:, s["au"]], post[:, s["au"]]
        ),
    }
    parts = [
        _table_html(scores["val"], "Validation (tuned rows out-of-fold by video)"),
        _table_html(scores["test"], "Test"),
    ]
    parts += [
        f'<h2>{html.escape(t)}</h2><img alt="{html.escape(t)}" src="data:image/png;base64,{b64}">'
        for t, b64 in images.items()
    ]
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}"
    return f"<!doctype html><html><head><meta charset='utf-8'>{GENERATOR}<title>affect-ens report</title><style>{style}</style></head><body><h1>affect-ens report: {html.escape(str(run))}</h1>{''.join(parts)}</body></html>"


def write_report(run_dir: str | Path, out: str | Path | None = None, edition_year: int = DEFAULT_EDITION) -> Path:
    """Write the report (default ``<run_dir>/report.html``) atomically; returns its path."""
    target = Path(out) if out else Path(run_dir) / "report.html"
    text = build_report(run_dir, edition_year)
    with atomic_file(target) as tmp:
        tmp.write_text(text)
    return target
