"""``affect-ens demo``: the whole pipeline on built-in synthetic data."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ensemble.cli.app import app, console, err_console
from ensemble.cli.common import EDITION, print_scores, say_edition
from ensemble.errors import AffectEnsError


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
    from ensemble.report import write_report

    with Outputs() as outs:
        result = run_demo(outs.update_folder(out, keep=lambda folder: True), cfg, log)
        log("writing the HTML report")
        report_path = write_report(out, edition_year=cfg.data.edition)
    print_scores(result["val"], cfg.data.edition, "validation (tuned rows out-of-fold by video)")
    print_scores(result["test"], cfg.data.edition, "test (held-out labels)")
    for task, path in result["zips"].items():
        console.print(f"{task} submission: {path}")
    console.print(f"report: {report_path}")
    console.print(f"done in {time.perf_counter() - start:.0f} s; everything is under {out}")


@app.command()
def report(
    run: Path = typer.Argument(
        ..., help="Run folder laid out like the demo's (scores.json, predictions/, fusions/, data/)."
    ),
    out: Path = typer.Option(None, "--out", help="HTML file to write (default: RUN/report.html)."),
    edition: str = EDITION,
    force: bool = typer.Option(False, "--force", help="Replace OUT if a previous report is there."),
) -> None:
    """Write a self-contained HTML report with plots (scores, confusion matrix, VA over time, ...)."""
    import json

    from ensemble.outputs import Outputs
    from ensemble.report import write_report
    from ensemble.tasks import resolve_edition

    target = out or run / "report.html"
    if target.suffix.lower() not in (".html", ".htm"):
        raise AffectEnsError(f"{target}: the report is an HTML page; name it <name>.html")
    dataset = run / "data" / "dataset.json"
    found = [(str(dataset), json.loads(dataset.read_text())["config"]["edition"])] if dataset.is_file() else []
    resolved, how = resolve_edition(edition, found)
    say_edition(resolved, how.replace("the tables' metadata", "the run's dataset.json"))
    with Outputs(force=force, inputs=[run]) as outs:
        write_report(run, outs.file(target), resolved.year)
    console.print(f"wrote {target}")
