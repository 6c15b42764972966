"""``affect-ens committee``: a committee run assembled from finished member runs of any kind."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ensemble.cli.app import app, console
from ensemble.outputs import Outputs, UnsafePathError, holds_training


def check_replaceable(out: Path) -> None:
    """--force replaces an assembled committee only, never a trained run (its weights) or another folder."""
    from ensemble.io import read_json_object

    config = out / "config.json"
    doc = read_json_object(config, "run config") if config.is_file() else {}
    if doc.get("member") != "committee" or not doc.get("runs") or holds_training(out):
        raise UnsafePathError(f"{out}: is not a committee assembled by affect-ens committee; choose a new --out")


@app.command()
def committee(
    runs: list[Path] = typer.Argument(
        ..., help="Finished member runs (train-member folders of any kind: keras, cnn, cnn_rnn, ...), two or more."
    ),
    lead: Path = typer.Option(None, "--lead", help="The run that decides ties; one of RUNS (default: the first)."),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Committee run folder to create (config.json naming the runs; they are not copied). "
        "predict-member RUN writes its voted table.",
    ),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it is a committee this tool wrote."),
) -> None:
    """Assemble a committee run from finished member runs of any kind: they vote per frame (classes for EXPR,
    units for AU, the median for VA), ties broken by the lead; predict it with predict-member."""
    from members.committee import assemble_committee

    if force and out.exists():
        check_replaceable(out)
    with Outputs(force=force, inputs=runs) as outs:
        cfg = assemble_committee(runs, lead, outs.folder(out, kind="committee"), out)
    names = ", ".join(Path(r).name for r in cfg.runs)
    console.print(
        f"wrote {escape(str(out))}: committee of {escape(names)} on {'+'.join(cfg.tasks)}, ties by {escape(cfg.lead)}",
        soft_wrap=True,  # one line, whatever the path's length: scripts read it
    )
