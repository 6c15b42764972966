"""A self-contained HTML report of any prediction tables scored against labels: one score table (best of each
column in bold), the out-of-fold scores and post-processing decisions of saved fusions, and plots (scores per
table, EXPR confusion of the best, valence over time, correlation of errors, per-AU F1). Scores come from the
scorer of ``affect-ens evaluate`` (``pipeline.member_rows``). Plots are matplotlib PNGs embedded as data URIs,
so the file opens anywhere with nothing beside it."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ensemble.align import Aligned
from ensemble.errors import DataError
from ensemble.evaluate import Truth
from ensemble.metrics import binary_f1_per_unit
from ensemble.outputs import STAMP, atomic_file
from ensemble.pipeline import member_rows
from ensemble.tasks import Edition, score_columns, score_formulas

GENERATOR = f'<meta name="generator" content="{STAMP}">'
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:24px auto;color:#222;line-height:1.4}"
    "h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd}.meta,.note{color:#555;font-size:14px}"
    "table{border-collapse:collapse;margin:8px 0;font-size:14px}"
    "th,td{border-bottom:1px solid #ddd;padding:4px 10px;text-align:right;font-variant-numeric:tabular-nums}"
    "thead th{border-bottom:2px solid #444;vertical-align:bottom}td.name,th.name{text-align:left}"
    ".challenge{background:#eef4fb}.best{font-weight:bold}figure{margin:16px 0}img{max-width:100%}"
    "figcaption{color:#555;font-size:14px}"
)
MAX_LINES = 3
"""Tables drawn in the per-frame plots (valence over time, per-AU F1): the best ones, so the plot stays legible."""


@dataclass
class SavedFusion:
    """What the page shows of a fusion saved by ``fuse --save-fusion``: its out-of-fold scores and decisions."""

    name: str
    scores: list[dict[str, Any]]
    decisions: list[dict[str, Any]]


def read_fusion(path: str | Path) -> SavedFusion:
    """The scores and post-processing decisions of a saved fusion; any other file is a one-line error."""
    from ensemble.pipeline import FittedFusion

    fusion = FittedFusion.load(path)
    return SavedFusion(Path(path).name, fusion.scores, fusion.post.decisions_ if fusion.post else [])


@dataclass
class ReportData:
    """What the page is drawn from: the tables aligned, their labels on ``split``, saved fusions."""

    stack: Aligned
    truths: dict[str, Truth]
    split: str
    fusions: list[SavedFusion] = field(default_factory=list)


def _value(row: dict[str, Any], key: str) -> float:
    value = row.get(key)
    return float("nan") if value is None else float(value)


def _cell(value: float, *classes: str) -> str:
    names = " ".join(c for c in classes if c)
    text = "–" if np.isnan(value) else f"{value:.4f}"
    return f'<td class="{names}">{text}</td>' if names else f"<td>{text}</td>"


def score_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], first: str = "predictions") -> str:
    """An HTML table, a row per table or fusion; the best value of each column is bold, challenge scores shaded."""
    best = {key: np.nanmax([_value(r, key) for r in rows] + [-np.inf]) for key, _ in columns}
    shade = {key: "challenge" if key.endswith("_score") else "" for key, _ in columns}
    head = "".join(
        f'<th class="{shade[key]}">{html.escape(title)}</th>' if shade[key] else f"<th>{html.escape(title)}</th>"
        for key, title in columns
    )
    body = "".join(
        f'<tr><td class="name">{html.escape(str(row["name"]))}</td>'
        + "".join(_cell(_value(row, k), shade[k], "best" if _value(row, k) == best[k] else "") for k, _ in columns)
        + "</tr>"
        for row in rows
    )
    return (
        f'<table class="scores"><thead><tr><th class="name">{html.escape(first)}</th>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def decisions_table(fusions: list[SavedFusion]) -> str:
    """The post-processing steps the saved fusions kept, with their out-of-fold scores; dropped ones counted."""
    kept = [(f.name, d) for f in fusions for d in f.decisions if d["kept"]]
    counts = ", ".join(
        f"{html.escape(f.name)}: {sum(not d['kept'] for d in f.decisions)} of {len(f.decisions)}" for f in fusions
    )
    note = f"<p class='note'>Post-processing steps dropped (gain under the margin): {counts}.</p>"
    if not kept:
        return f"<p class='note'>No post-processing step kept.</p>{note}"
    head = "".join(f'<th class="name">{t}</th>' for t in ("fusion", "step", "target", "setting"))
    rows = "".join(
        "<tr>"
        + "".join(f'<td class="name">{html.escape(str(v))}</td>' for v in (name, d["step"], d["target"], d["setting"]))
        + _cell(float(d["out_of_fold_without"]))
        + _cell(float(d["out_of_fold_with"]))
        + "</tr>"
        for name, d in kept
    )
    head += "<th>out-of-fold without</th><th>with</th>"
    return f"<h3>Post-processing kept</h3><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{note}"


def fusion_section(fusions: list[SavedFusion], columns: list[tuple[str, str]]) -> str:
    """Scores the saved fusions report where they were fitted (tuned rows out-of-fold by video), then what their
    post-processing kept; a member scored in several files is shown once when its scores agree."""
    if not fusions:
        return ""
    rows: list[dict[str, Any]] = []
    for fusion in fusions:
        rows += [r for r in fusion.scores if r not in rows]
    names = ", ".join(f.name for f in fusions)
    known = [(key, title) for key, title in columns if any(key in r for r in rows)]
    return (
        f"<h2>Where the fusion was fitted: tuned rows out-of-fold by video ({html.escape(names)})</h2>"
        + score_table(rows, known)
        + "<p class='note'>A fused table scored above on the split its fusion was fitted on is scored in-sample; "
        "the rows here are the honest ones.</p>" + decisions_table(fusions)
    )


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plain(text: object) -> str:
    """A name from data as matplotlib text: a ``$`` would start mathematics there."""
    return str(text).replace("$", r"\$")


def best_first(rows: list[dict[str, Any]], task: str) -> list[int]:
    """Indices of ``rows`` by their challenge score of ``task``, best first (unscored last)."""
    values = np.array([_value(r, f"{task}_score") for r in rows])
    return [int(i) for i in np.argsort(np.where(np.isnan(values), np.inf, -values), kind="stable")]


def score_bars(rows: list[dict[str, Any]], titles: dict[str, str]) -> str:
    """One panel per task: each table's challenge score, the best in orange."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(titles), figsize=(4.5 * len(titles), 1.2 + 0.35 * len(rows)), squeeze=False)
    names = [_plain(r["name"]) for r in rows]
    for ax, (task, title) in zip(axes[0], titles.items()):
        values = np.array([_value(r, f"{task}_score") for r in rows])
        best = best_first(rows, task)[0]
        ax.barh(names, values, color=["tab:orange" if i == best else "tab:blue" for i in range(len(rows))])
        for y, v in enumerate(values):
            ax.text(v if np.isfinite(v) else 0, y, f" {v:.3f}", va="center", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xlim(min(0.0, np.nanmin(values, initial=0.0)), 1.0)
        ax.invert_yaxis()
        ax.tick_params(labelleft=ax is axes[0, 0])  # the same rows in every panel: label them once
    return _png(fig)


def confusion(edition: Edition, truth: Truth, outputs: np.ndarray, title: str) -> str:
    """The EXPR confusion matrix of ``outputs`` (frames, classes), rows normalised to the true class."""
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
    ax.set_title(_plain(title), fontsize=10)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w" if cm[i, j] > 0.6 else "k")
    return _png(fig)


def va_over_time(stack: Aligned, truth: Truth, members: list[int]) -> str:
    """Valence of ``members`` and the truth on the video with the most labelled frames."""
    import matplotlib.pyplot as plt

    codes = stack.video_codes()
    rows = np.flatnonzero(codes == np.bincount(codes[truth.rows]).argmax())
    full_truth = np.full(len(codes), np.nan)
    full_truth[truth.rows] = truth.values[:, 0]
    frames = stack.keys["frame"].to_numpy()[rows]
    fig, ax = plt.subplots(figsize=(12, 3.5))
    ax.plot(frames, full_truth[rows], "k", lw=2, label="truth")
    for m in members:
        ax.plot(frames, stack.task_values("va")[m, rows, 0], lw=1, alpha=0.85, label=_plain(stack.members[m]))
    ax.set_title(f"valence over time: video {_plain(stack.keys['video'].iloc[rows[0]])}", fontsize=10)
    ax.set_xlabel("frame")
    ax.set_ylim(-1.05, 1.05)
    ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def error_correlation(stack: Aligned, truth: Truth) -> str:
    """Correlation of the tables' valence errors on the labelled frames."""
    import matplotlib.pyplot as plt

    errors = stack.task_values("va")[:, truth.rows, 0] - truth.values[None, :, 0]
    corr = np.corrcoef(errors)
    n = len(stack.members)
    names = [_plain(m) for m in stack.members]
    fig, ax = plt.subplots(figsize=(2 + 0.8 * n, 1.5 + 0.8 * n))
    im = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{corr[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="w" if abs(corr[i, j]) > 0.6 else "k",
            )
    ax.set_title("correlation of valence errors", fontsize=10)
    fig.colorbar(im)
    return _png(fig)


def au_f1(stack: Aligned, truth: Truth, members: list[int]) -> str:
    """Per-AU F1 (threshold 0.5, as scored) of ``members``."""
    import matplotlib.pyplot as plt

    aus = stack.edition.aus
    x, width = np.arange(len(aus)), 0.8 / len(members)
    fig, ax = plt.subplots(figsize=(12, 3.5))
    for i, m in enumerate(members):
        f1 = binary_f1_per_unit(truth.values, stack.task_values("au")[m, truth.rows] >= 0.5)
        ax.bar(x + (i - (len(members) - 1) / 2) * width, f1, width, label=_plain(stack.members[m]))
    ax.set_xticks(x, aus)
    ax.set_ylim(0, 1.15)  # room for the legend above the bars
    ax.set_ylabel("F1")
    ax.legend(fontsize=8, ncol=len(members), loc="upper center")
    ax.set_title("per-AU F1", fontsize=10)
    return _png(fig)


def figures(data: ReportData, rows: list[dict[str, Any]], titles: dict[str, str]) -> list[tuple[str, str]]:
    """(caption, PNG as base64) of each plot the tables allow."""
    stack, truths, split = data.stack, data.truths, data.split
    out = [(f"Challenge score of each table on {split}; the best in orange.", score_bars(rows, titles))]
    if "expr" in truths:
        best = best_first(rows, "expr")[0]
        expr = stack.task_values("expr")[best]
        caption = f"EXPR confusion matrix of the best EXPR table, {stack.members[best]}, on {split} (rows: true class)."
        out.append((caption, confusion(stack.edition, truths["expr"], expr, stack.members[best])))
    if "va" in truths:
        va_best = best_first(rows, "va")[:MAX_LINES]
        caption = "Valence over time on the video with the most labelled frames: the truth and the best VA tables."
        out.append((caption, va_over_time(stack, truths["va"], va_best)))
        if len(stack.members) > 1:
            caption = "Correlation of the tables' valence errors: the less correlated, the more fusing them can gain."
            out.append((caption, error_correlation(stack, truths["va"])))
    if "au" in truths:
        caption = f"Per-AU F1 on {split} (threshold 0.5, as scored) of the best AU tables."
        out.append((caption, au_f1(stack, truths["au"], best_first(rows, "au")[:MAX_LINES])))
    return out


def _summary(data: ReportData) -> str:
    stack = data.stack
    labelled = ", ".join(f"{task.upper()} {len(truth.rows)}" for task, truth in data.truths.items())
    return (
        f"ABAW edition {stack.edition.name} · {len(stack.members)} table(s) · split {data.split}: "
        f"{len(stack.keys)} frames in {stack.keys['video'].nunique()} videos (labelled frames: {labelled})"
    )


def build_report(data: ReportData, title: str = "affect-ens report") -> str:
    """HTML text of the report: score table, saved fusions' out-of-fold scores and decisions, plots."""
    if not data.truths:
        raise DataError(f"no labels for the tables' tasks ({', '.join(data.stack.tasks)}): nothing to score")
    rows = member_rows(data.stack, data.truths)
    columns = score_columns(data.stack.edition, tuple(data.truths))
    challenge = dict(columns)
    titles = {t: f"{challenge[f'{t}_score']} on {data.split}" for t in data.truths}
    note = (
        f"Scored as <code>affect-ens evaluate</code> scores them (edition {html.escape(data.stack.edition.name)}); "
        f"shaded: the challenge score of each track ({html.escape(', '.join(challenge[f'{t}_score'] for t in data.truths))}); "
        "bold: the best of each column; CCC V, CCC A: valence, arousal."
        + "".join(f" {html.escape(f)}." for f in score_formulas(data.stack.edition, data.truths))
    )
    parts = [
        f"<h1>{html.escape(title)}</h1><p class='meta'>{html.escape(_summary(data))}</p>",
        f"<h2>Scores on {html.escape(data.split)}</h2>{score_table(rows, columns)}<p class='note'>{note}</p>",
        fusion_section(data.fusions, columns),
        "<h2>Plots</h2>",
    ]
    parts += [
        f'<figure><img alt="{html.escape(c)}" src="data:image/png;base64,{b64}"><figcaption>{html.escape(c)}'
        "</figcaption></figure>"
        for c, b64 in figures(data, rows, titles)
    ]
    head = f"<meta charset='utf-8'>{GENERATOR}<title>{html.escape(title)}</title><style>{STYLE}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>"


def write_report(data: ReportData, out: str | Path, title: str = "affect-ens report") -> Path:
    """Write the report page to ``out`` atomically; returns its path."""
    text = build_report(data, title)
    with atomic_file(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(out)


@dataclass
class ReportSources:
    """The files a report is drawn from: prediction tables of one split, the labels root, saved fusions."""

    predictions: list[Path]
    labels: Path
    split: str = "val"
    fusions: list[Path] = field(default_factory=list)


def report_sources(inputs: list[Path], labels: Path | None, split: str, fusions: list[Path]) -> ReportSources:
    """Tables with ``labels`` (a demo run folder alone is read by the CLI, which knows the demo's layout)."""
    folders = [p for p in inputs if p.is_dir()]
    if folders:
        raise DataError(
            f"{folders[0]}: is a folder; pass prediction tables, or a demo run folder alone without --labels"
        )
    if labels is None:
        raise DataError("scoring the tables needs --labels (the Aff-Wild2 root holding the annotation folders)")
    return ReportSources(list(inputs), labels, split, list(fusions))
