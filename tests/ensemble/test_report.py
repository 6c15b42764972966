"""``affect-ens report`` on any prediction tables: its score table against ``evaluate``, the columns each edition
shows, the best of each column in bold, saved fusions, and bad inputs."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pytest
from helpers import run_here, tree_state, write_simulated_dataset

from ensemble.contract import read_table, write_table
from ensemble.report import score_table
from ensemble.tasks import EDITIONS, TASKS, score_columns


class Tables(HTMLParser):
    """Every ``<table>`` of a page: rows of (cell text, cell classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[tuple[str, str]]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._class = [], dict(attrs).get("class") or ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(("".join(self._cell), self._class))
            self._cell = None


def page_tables(page: str) -> list[list[list[tuple[str, str]]]]:
    parser = Tables()
    parser.feed(page)
    return parser.tables


def score_grid(page: str) -> tuple[list[str], dict[str, dict[str, str]], set[tuple[str, str]]]:
    """(headers, name -> header -> text, bold (name, header) cells) of the page's first score table."""
    header, *rows = page_tables(page)[0]
    titles = [text for text, _ in header[1:]]
    grid = {row[0][0]: {t: text for t, (text, _) in zip(titles, row[1:])} for row in rows}
    bold = {(row[0][0], t) for row in rows for t, (_, cls) in zip(titles, row[1:]) if "best" in cls.split()}
    return titles, grid, bold


def evaluate_grid(stdout: str) -> dict[str, dict[str, str]]:
    """name -> header -> text of ``evaluate``'s printed table."""
    lines = [[c.strip() for c in ln.replace("┃", "│").split("│")[1:-1]] for ln in stdout.splitlines()]
    lines = [cells for cells in lines if cells]
    header = lines[0]
    return {cells[0]: dict(zip(header[1:], cells[1:])) for cells in lines[1:]}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """Labels of a simulated validation split and two members' tables (m0 less noisy than m1)."""
    root = tmp_path_factory.mktemp("report")
    _, paths = write_simulated_dataset(root, videos=4, frames=60, members=2)
    return root, paths


@pytest.fixture(scope="module")
def page(sim, tmp_path_factory):
    root, paths = sim
    out = tmp_path_factory.mktemp("page") / "report.html"
    result = run_here("report", *paths, "--labels", root, "--out", out)
    assert result.returncode == 0, result.stderr
    return out.read_text()


def test_report_scores_are_the_numbers_evaluate_prints(sim, page):
    root, paths = sim
    result = run_here("evaluate", *paths, "--labels", root)
    assert result.returncode == 0, result.stderr
    titles, grid, _ = score_grid(page)
    expected = evaluate_grid(result.stdout)
    assert sorted(grid) == sorted(expected) == ["m0", "m1"]
    assert titles == ["EXPR F1", "CCC V", "CCC A", "VA CCC", "AU F1"]
    for name in grid:
        assert grid[name] == expected[name]


def test_report_is_a_stamped_page_with_a_plot_per_view(page):
    assert '<meta name="generator" content="affect-ens">' in page
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    # scores, EXPR confusion, valence over time, error correlation, per-AU F1
    assert len(images) == page.count("<img") == 5
    assert all(base64.b64decode(b).startswith(b"\x89PNG") for b in images)


def test_the_best_of_each_column_and_only_it_is_bold(page):
    titles, grid, bold = score_grid(page)
    for title in titles:
        values = {name: float(row[title]) for name, row in grid.items()}
        assert {(n, title) for n, v in values.items() if v == max(values.values())} == {
            cell for cell in bold if cell[1] == title
        }
    rows = [{"name": "a", "va_score": 0.5, "au_score": 0.1}, {"name": "b", "va_score": 0.4, "au_score": 0.1}]
    _, _, hand = score_grid(score_table(rows, [("va_score", "VA"), ("au_score", "AU")]))
    assert hand == {("a", "VA"), ("a", "AU"), ("b", "AU")}  # a tie is bold twice


def test_each_metric_is_shown_once_for_the_edition():
    headers = [title for _, title in score_columns(EDITIONS[10], TASKS)]
    assert headers == ["EXPR F1", "CCC V", "CCC A", "VA CCC", "AU F1"]
    old = [title for _, title in score_columns(EDITIONS[2], TASKS)]
    assert old[:3] == ["EXPR F1", "EXPR acc", "EXPR score"]
    assert old[-3:] == ["AU F1", "AU acc", "AU score"]


def _columns(page: str) -> dict[str, list[str]]:
    titles, grid, _ = score_grid(page)
    return {t: [row[t] for row in grid.values()] for t in titles}


def test_no_column_repeats_another_in_2025_and_2021_shows_f1_and_score(sim, page, tmp_path):
    columns = _columns(page)
    assert len({tuple(v) for v in columns.values()}) == len(columns)  # expr_f1 == expr_score is shown once
    root, paths = sim
    va_au = []
    for path in paths:  # the simulated labels have 8 classes: 2021 scores their VA and AU
        table = read_table(path)
        table.data = table.data.drop(columns=[c for c in table.data if c.startswith("expr_")])
        table.meta.tasks = ("va", "au")
        va_au.append(write_table(table, tmp_path / path.name))
    out = tmp_path / "2021.html"
    result = run_here("report", *va_au, "--labels", root, "--edition", "2021", "--out", out)
    assert result.returncode == 0, result.stderr
    old = _columns(out.read_text())
    assert old["AU F1"] != old["AU score"]
    expected = evaluate_grid(run_here("evaluate", *va_au, "--labels", root, "--edition", "2021").stdout)
    _, grid, _ = score_grid(out.read_text())
    assert {n: dict(row) for n, row in grid.items()} == expected


def test_a_saved_fusion_adds_its_out_of_fold_scores_and_kept_steps(sim, tmp_path):
    root, paths = sim
    fused, saved = tmp_path / "fused.parquet", tmp_path / "average.json"
    args = ("--labels", root, "--folds", 2, "--save-fusion", saved, "--out", fused, "--method", "average")
    assert run_here("fuse", *paths, *args).returncode == 0
    out = tmp_path / "page.html"
    result = run_here("report", *paths, fused, "--labels", root, "--fusion", saved, "--out", out)
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert sorted(score_grid(page)[1]) == ["fused-average", "m0", "m1"]
    oof = {row[0][0] for row in page_tables(page)[1][1:]}
    assert oof == {"m0", "m1", "average (out-of-fold)", "average + post (out-of-fold)"}
    assert re.search(r"Post-processing steps dropped \(gain under the margin\): average.json: \d+ of \d+", page)


def test_names_from_data_are_escaped(sim, tmp_path):
    root, paths = sim
    table = read_table(paths[0])
    table.meta.member = "<script>alert(1)</script>"
    odd = write_table(table, tmp_path / "odd.parquet")
    out = tmp_path / "page.html"
    assert run_here("report", odd, paths[1], "--labels", root, "--out", out).returncode == 0
    page = out.read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


BAD = {
    "missing table": (lambda s, t: [t / "gone.parquet", *s[1]], "--out", "page.html", "prediction file not found"),
    "text page": (lambda s, t: s[1], "--out", "page.txt", "the report is an HTML page; name it <name>.html"),
    "labels without the split": (
        lambda s, t: [*s[1], "--labels-split", "test"],
        "--out",
        "page.html",
        "no expr annotations for split 'test'",
    ),
    "no labels": (lambda s, t: [*s[1], "--no-labels"], "--out", "page.html", "needs --labels"),
    "no page named": (lambda s, t: s[1], "--labels", "", "name the page to write: --out <name>.html"),
    "a fusion that is not one": (
        lambda s, t: [*s[1], "--fusion", s[1][0]],
        "--out",
        "page.html",
        "fusion file is not UTF-8 text",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_and_leaves_nothing(sim, tmp_path, case):
    build, option, value, message = BAD[case]
    root, _ = sim
    args = [str(a) for a in build(sim, tmp_path)]
    labels = [] if "--no-labels" in args else ["--labels", root]
    args = [a for a in args if a != "--no-labels"] + labels
    if value:
        args += [option, tmp_path / value]
    before = tree_state(root, tmp_path)
    result = run_here("report", *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert tree_state(root, tmp_path) == before
