"""``affect-ens demo``: the whole pipeline on built-in synthetic data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ensemble.cli.app import app, console, err_console
from ensemble.cli.common import ALIGN, EDITION, LABELS_SPLIT, load_stack, load_truths, print_scores, say_edition
from ensemble.errors import AffectEnsError

if TYPE_CHECKING:
    from ensemble.report import ReportSources


@app.command()
def demo(
    out: Path = typer.Option(
        Path("demo_out"), "--out", help="Folder for everything the demo writes (reused on re-runs)."
    ),
    small: bool = typer.Option(False, "--small", help="CI-sized run: tiny data, one epoch, timm's tiny test backbone."),
    kind: str = typer.Option(
        "aff-wild2",
        "--kind",
        help="aff-wild2 (default) or images: a Kaggle image challenge (9 classes, test_kaggle/, sample_submission.csv).",
    ),
) -> None:
    """Generate data, train members (cnn x2, committee, cnn_rnn, cnn_transformer), predict, fuse (vote, average, stack
    with smoothing and thresholds), score on validation (out-of-fold) and test, write submissions. With --kind
    images: three cnn members and a committee of them, vote and average, the Kaggle CSV, accuracy on the hidden
    test truth."""
    from ensemble.cli.demo_layout import DemoLayout
    from ensemble.cli.demo_pipeline import DemoConfig, run_demo
    from ensemble.tasks import get_edition
    from members.synthetic.dataset import SyntheticConfig

    if kind == "images":
        return image_demo(out, small)
    if kind != "aff-wild2":
        raise AffectEnsError(f"--kind {kind!r}: choose aff-wild2 or images")

    cfg = DemoConfig.smallest() if small else DemoConfig(SyntheticConfig())
    say_edition(get_edition(cfg.data.edition), "the default")
    start = time.perf_counter()

    def log(message: str) -> None:
        err_console.print(f"[dim]{time.perf_counter() - start:6.0f} s[/dim]  {message}")

    from ensemble.outputs import Outputs
    from ensemble.report import write_report

    with Outputs() as outs:
        result = run_demo(outs.update_folder(out, kind="demo", keep=lambda folder: True), cfg, log)
        log("writing the HTML report")
        data = report_data(DemoLayout(out).report_sources(), None, "strict", quiet=True)
        report_path = write_report(data, out / "report.html")
    print_scores(result["val"], get_edition(cfg.data.edition), "validation (tuned rows out-of-fold by video)")
    print_scores(result["test"], get_edition(cfg.data.edition), "test (held-out labels)")
    for task, path in result["zips"].items():
        console.print(f"{task} submission: {path}")
    console.print(f"report: {report_path}")
    console.print(f"done in {time.perf_counter() - start:.0f} s; everything is under {out}")


def image_demo(out: Path, small: bool) -> None:
    """demo --kind images."""
    from ensemble.cli.demo_images import ImageDemoConfig, run_image_demo
    from ensemble.outputs import Outputs
    from ensemble.report import ReportData, write_report

    cfg = ImageDemoConfig.smallest() if small else ImageDemoConfig()
    start = time.perf_counter()

    def log(message: str) -> None:
        err_console.print(f"[dim]{time.perf_counter() - start:6.0f} s[/dim]  {message}")

    with Outputs() as outs:
        folder = outs.update_folder(out, kind="demo", keep=lambda folder: True)
        result = run_image_demo(folder, cfg, log)
        log("writing the HTML report (validation)")
        stack = load_stack([Path(p) for p in result["val_paths"]], None, "strict", quiet=True)
        data = ReportData(stack, load_truths(folder / "data", "val", stack), "val", [])
        report_path = write_report(data, folder / "report.html")
    print_scores(result["val"], stack.edition, "validation (tuned rows out-of-fold by image)")
    for row in result["test"]:
        console.print(f"test accuracy (hidden truth) {row['name']}: {row['accuracy']:.4f}", highlight=False)
    console.print(f"submission: {result['submission']}")
    console.print(f"report: {report_path}")
    console.print(f"done in {time.perf_counter() - start:.0f} s; everything is under {out}")


def report_data(sources: ReportSources, edition: str | None, policy: str, *, quiet: bool = False):
    """The report's data from its source files: tables and labels loaded as ``evaluate`` loads them."""
    from ensemble.report import ReportData, read_fusion

    fusions = [read_fusion(p) for p in sources.fusions]
    stack = load_stack(sources.predictions, edition, policy, quiet=quiet)
    return ReportData(stack, load_truths(sources.labels, sources.split, stack), sources.split, fusions)


def _demo_folder(inputs: list[Path], labels: Path | None) -> bool:
    """One folder alone, without --labels: a demo run folder."""
    return labels is None and len(inputs) == 1 and inputs[0].is_dir()


def _default_page(inputs: list[Path], labels: Path | None) -> Path:
    """RUN/report.html for a demo run folder; tables name their page."""
    if _demo_folder(inputs, labels):
        return inputs[0] / "report.html"
    raise AffectEnsError("name the page to write: --out <name>.html")


@app.command()
def report(
    inputs: list[Path] = typer.Argument(
        ...,
        metavar="tables|run",
        help="Prediction tables (.parquet or .csv) of one split, members' or fused (as predict-member and fuse "
        "write them); or one run folder laid out like the demo's (then its test tables, labels and fusions).",
    ),
    labels: Path = typer.Option(
        None, "--labels", help="Aff-Wild2 root holding the annotation folders (needed unless a demo folder)."
    ),
    labels_split: str = LABELS_SPLIT,
    fusion: list[Path] = typer.Option(
        None,
        "--fusion",
        help="A fusion saved by fuse --save-fusion: its out-of-fold scores and post-processing (repeatable).",
    ),
    out: Path = typer.Option(None, "--out", help="HTML page to write (default for a demo folder: RUN/report.html)."),
    edition: str = EDITION,
    align_policy: str = ALIGN,
    force: bool = typer.Option(False, "--force", help="Replace OUT if a previous report is there."),
) -> None:
    """Write a self-contained HTML page: the tables' scores (best of each column in bold), saved fusions'
    out-of-fold scores and decisions, plots (scores, EXPR confusion, valence over time, error correlation, AU F1)."""
    from ensemble.outputs import Outputs
    from ensemble.report import report_sources, write_report

    target = out or _default_page(inputs, labels)
    if target.suffix.lower() not in (".html", ".htm"):
        raise AffectEnsError(f"{target}: the report is an HTML page; name it <name>.html")
    with Outputs(force=force, inputs=[*inputs, labels, *(fusion or [])]) as outs:
        page = outs.file(target)  # refused outputs are said before the tables are read
        if _demo_folder(inputs, labels):
            from ensemble.cli.demo_layout import DemoLayout

            sources = DemoLayout(inputs[0]).report_sources()
        else:
            sources = report_sources(inputs, labels, labels_split, fusion or [])
        data = report_data(sources, edition, align_policy)
        write_report(data, page)
    console.print(f"wrote {target}")
