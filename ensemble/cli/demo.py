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
    from ensemble.report import ReportData, ReportSources


@app.command()
def demo(
    out: Path = typer.Option(
        Path("demo_out"), "--out", help="Folder for everything the demo writes (reused on re-runs)."
    ),
    small: bool = typer.Option(False, "--small", help="CI-sized run: tiny data, one epoch, timm's tiny test backbone."),
) -> None:
    """Generate data, train members (cnn x2, committee, cnn_rnn, cnn_transformer), predict, fuse (vote, average, stack
    with smoothing and thresholds), score on validation (out-of-fold) and test, write submissions."""
    from ensemble.tasks import get_edition
    from members.demo import DemoConfig, run_demo
    from members.synthetic import SyntheticConfig

    cfg = DemoConfig.smallest() if small else DemoConfig(SyntheticConfig())
    say_edition(get_edition(cfg.data.edition), "the default")
    start = time.perf_counter()

    def log(message: str) -> None:
        err_console.print(f"[dim]{time.perf_counter() - start:6.0f} s[/dim]  {message}")

    from ensemble.outputs import Outputs
    from ensemble.report import demo_sources, write_report

    with Outputs() as outs:
        result = run_demo(outs.update_folder(out, kind="demo", keep=lambda folder: True), cfg, log)
        log("writing the HTML report")
        data = report_data(demo_sources(out), None, "strict", quiet=True)
        report_path = write_report(data, out / "report.html")
    print_scores(result["val"], get_edition(cfg.data.edition), "validation (tuned rows out-of-fold by video)")
    print_scores(result["test"], get_edition(cfg.data.edition), "test (held-out labels)")
    for task, path in result["zips"].items():
        console.print(f"{task} submission: {path}")
    console.print(f"report: {report_path}")
    console.print(f"done in {time.perf_counter() - start:.0f} s; everything is under {out}")


def report_data(sources: ReportSources, edition: str | None, policy: str, *, quiet: bool = False) -> ReportData:
    """The report's data from its source files: tables and labels loaded as ``evaluate`` loads them."""
    from ensemble.report import ReportData, read_fusion

    fusions = [read_fusion(p) for p in sources.fusions]
    stack = load_stack(sources.predictions, edition, policy, quiet=quiet)
    return ReportData(stack, load_truths(sources.labels, sources.split, stack), sources.split, fusions)


def _default_page(inputs: list[Path], labels: Path | None) -> Path:
    """RUN/report.html for a demo run folder; tables name their page."""
    if labels is None and len(inputs) == 1 and inputs[0].is_dir():
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
        data = report_data(report_sources(inputs, labels, labels_split, fusion or []), edition, align_policy)
        write_report(data, page)
    console.print(f"wrote {target}")
