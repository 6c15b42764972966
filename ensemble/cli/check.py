"""``affect-ens check-members``: does each member behave on the split a fusion is applied to as on the split
it is fitted on? ``fuse`` runs the same check before it fits on one split to apply to another."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from ensemble.cli.app import app, console
from ensemble.cli.common import ALIGN, EDITION, LABELS_SPLIT, load_stack, load_truths, note
from ensemble.errors import AffectEnsError

if TYPE_CHECKING:  # the check itself is imported when it runs: `affect-ens --help` starts without pandas
    from ensemble.align import Aligned
    from ensemble.check import MemberReport
    from ensemble.evaluate import Truth

DROP = typer.Option(None, "--drop-member", help="Leave this member out of fit and apply (repeat for several).")
ACCEPT = typer.Option(None, "--accept", help="Vouch for this member: its member-check flags do not stop (repeat).")


def _change(fit: float, apply: float) -> str:
    return f"{_short(fit)} → {_short(apply)}"


def _short(x: float, sign: bool = False) -> str:
    """0.25 as .25 (and -.25, +.25 with ``sign``): the table fits a 100-column terminal."""
    return (f"{x:+.2f}" if sign else f"{x:.2f}").replace("0.", ".", 1)


def _distribution(task: str, report: MemberReport, stack: Aligned) -> list[str]:
    """Lines of a member's output distribution on both splits: EXPR's most frequent class (on the fit split)
    and its share, VA mean±std of each dimension, AU mean rate."""
    fit, apply = report.fit.distribution[task], report.apply.distribution[task]
    if task == "expr":
        top = int(fit.argmax())
        return [f"{stack.edition.expr_classes[top]} {fit[top]:.0%} → {apply[top]:.0%}"]
    if task == "va":
        return [
            f"{dim} {_short(fit[2 * d], True)}±{_short(fit[2 * d + 1])} → "
            f"{_short(apply[2 * d], True)}±{_short(apply[2 * d + 1])}"
            for d, dim in enumerate(("V", "A"))
        ]
    return [f"AU rate {_change(float(fit.mean()), float(apply.mean()))}"]


def check_table(reports: list[MemberReport], stack: Aligned, splits: tuple[str, str], accepted=()) -> Table:
    """One row per member: fit-split scores (with labels); agreement with the other members, frame lag of the
    best agreement and output distribution on both splits; a word for each flag (the reasons follow)."""
    from ensemble.check import AGREEMENT, TASK_NAMES

    title = f"member check: {splits[0]} → {splits[1]}" + (f" (scores on {splits[0]})" if reports[0].scores else "")
    caption = (
        "agreement: mean κ (EXPR classes, AU decisions) or r (VA) with each unflagged other member, and the frame "
        "lag where it is best; distribution: the top class's share, VA mean±std, AU mean rate"
    )
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left", show_lines=True)
    table.add_column("member", no_wrap=True)
    if reports[0].scores:
        table.add_column("score", no_wrap=True)
    table.add_column("agreement", no_wrap=True)
    table.add_column("distribution", no_wrap=True)
    table.add_column("flags", min_width=10)
    for r in reports:
        cells = [escape(r.name)]
        if r.scores:
            cells.append("\n".join(f"{TASK_NAMES[t]} {_short(s)}" for t, s in r.scores.items()))
        agreement = [
            f"{TASK_NAMES[t]} {AGREEMENT[t]} {_change(r.fit.agreement[t], r.apply.agreement[t])}" for t in stack.tasks
        ]
        cells.append("\n".join(agreement + [f"lag {r.fit.lag:+d} → {r.apply.lag:+d}"]))
        cells.append(escape("\n".join(line for t in stack.tasks for line in _distribution(t, r, stack))))
        accepted_flags = r.flags and r.name in accepted
        cells.append(("accepted: " if accepted_flags else "") + ", ".join(dict.fromkeys(r.tags)) if r.flags else "ok")
        table.add_row(*cells, style="red" if r.flags and not accepted_flags else None)
    return table


def print_check(reports: list[MemberReport], stack: Aligned, splits: tuple[str, str], accepted=()) -> None:
    """The table on stdout, then each flagged member's reasons."""
    console.print(check_table(reports, stack, splits, accepted))
    for r in reports:
        for reason in r.flags:
            console.print(f"{r.name}: {reason}", markup=False, highlight=False)


def run_check(
    fit: Aligned, apply: Aligned, truths: dict[str, Truth] | None, accept: list[str] | None, *, always: bool = False
) -> list[MemberReport]:
    """Check the members, print the table (always, or when something is flagged) and stop on a flagged member
    the user has not accepted."""
    from ensemble.check import check_members, raise_if_flagged

    accept = accept or []
    unknown = [n for n in accept if n not in fit.members]
    if unknown:
        raise AffectEnsError(f"--accept {unknown[0]!r}: no such member; members: {', '.join(fit.members)}")
    if len(fit.members) < 2:
        note("member check: one member has no others to be compared with; nothing checked")
        return []
    splits = ("validation", "test")
    reports = check_members(fit, apply, truths, splits=splits)
    if always or any(r.flags for r in reports):
        print_check(reports, fit, splits, accept)
    for r in reports:
        if r.flags and r.name in accept:
            note(f"member {r.name} accepted despite: {'; '.join(r.flags)}")
    raise_if_flagged(reports, accept)
    if not always and not any(r.flags for r in reports):
        note(f"member check: {len(reports)} members behave alike on {splits[0]} and {splits[1]}")
    return reports


@app.command("check-members")
def check_members_command(
    predictions: list[Path] = typer.Argument(..., help="Members' tables of the split a fusion is fitted on."),
    apply: list[Path] = typer.Option(
        ..., "--apply", help="The same members' tables of the split it is applied to (repeat; same order)."
    ),
    labels: Path = typer.Option(
        None, "--labels", help="Aff-Wild2 root with the annotations of the fit split: adds scores and the leak flag."
    ),
    drop_member: list[str] = DROP,
    accept: list[str] = ACCEPT,
    labels_split: str = LABELS_SPLIT,
    edition: str = EDITION,
    align_policy: str = ALIGN,
) -> None:
    """Compare each member's behaviour on the fit split with the apply split (agreement with the other members,
    output distribution, frame lag, class order) and flag members that changed: a table, one row per member."""
    from ensemble.check import drop_members

    fit = drop_members(load_stack(predictions, edition, align_policy), drop_member or [])
    target = drop_members(load_stack(apply, edition, align_policy), drop_member or [])
    truths = load_truths(labels, labels_split, fit) if labels else None
    run_check(fit, target, truths, accept, always=True)
