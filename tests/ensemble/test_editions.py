"""The one edition table: names, tracks, layouts, how a command resolves its edition, and that no other
module writes a year."""

import ast
from pathlib import Path

import pytest
from helpers import invoke, write_simulated_dataset
from sklearn.metrics import accuracy_score, f1_score

from ensemble.contract import read_table, table_edition
from ensemble.errors import AffectEnsError, ContractError, SubmissionError
from ensemble.tasks import DEFAULT_EDITION, EDITIONS, get_edition, resolve_edition

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "name, year",
    [
        ("2025", 2025),
        (2021, 2021),
        ("abaw8", 2025),
        ("ABAW8", 2025),
        (" abaw3 ", 2022),
        ("abaw4", 2022),
        ("ABAW7", 2024),
        ("abaw1", 2020),
    ],
)
def test_an_edition_is_named_by_year_or_abaw_number(name, year):
    assert get_edition(name).year == year


@pytest.mark.parametrize("name", ["1999", "abaw9", "abaw0", "twenty", "2025x", ""])
def test_unknown_names_list_the_valid_ones(name):
    with pytest.raises(
        AffectEnsError, match=r"choose one of: 2020, 2021, 2022, 2023, 2024, 2025 \(or abaw1 \.\.\. abaw8\)"
    ):
        get_edition(name)


def test_tracks_and_layouts_per_edition():
    tracks = {year: " ".join(ed.tracks) for year, ed in EDITIONS.items()}
    assert tracks == {
        2020: "expr va au",
        2021: "expr va au",
        2022: "expr va au mtl",
        2023: "expr va au",
        2024: "expr va au mtl",
        2025: "expr va au",
    }
    layouts = {year: ed.track_layout("va") for year, ed in EDITIONS.items()}
    assert layouts == {y: "per-video" if y <= 2022 else "single-file" for y in EDITIONS}
    assert get_edition("abaw7").track_layout("mtl") == get_edition(2022).track_layout("mtl") == "multi-task"
    with pytest.raises(
        SubmissionError, match=r"no mtl track in edition 2023 \(ABAW5\); it ran in: 2022 \(ABAW3, ABAW4\), 2024"
    ):
        get_edition(2023).track_layout("mtl")
    assert [ed.year for ed in EDITIONS.values() if ed.sentinel_fill] == [2021]


def test_resolution_given_then_tables_then_default():
    assert resolve_edition("abaw6", [("a", 2025)]) == (EDITIONS[2024], "given")
    assert resolve_edition(None, [("a", 2022), ("b", 2022)]) == (EDITIONS[2022], "from the tables' metadata")
    assert resolve_edition(None) == (EDITIONS[DEFAULT_EDITION], "the default")
    with pytest.raises(
        ContractError, match=r"the tables name different editions \(b says 2024, a says 2025\); pass --edition"
    ):
        resolve_edition(None, [("a", 2025), ("b", 2024)])


def test_an_explicit_edition_must_fit_every_table(tmp_path):
    _, paths = write_simulated_dataset(tmp_path, videos=2, frames=10, members=1)
    table = read_table(paths[0])
    assert table_edition(None, [table], ["m0"]) == (EDITIONS[2025], "from the tables' metadata")
    assert table_edition(2023, [table], ["m0"])[0] is EDITIONS[2023]
    with pytest.raises(
        ContractError, match=r"^m0: expr label set of edition 2025 \(8 outputs\) does not match edition 2021"
    ):
        table_edition(2021, [table], ["m0"])


def _year_literals(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and type(n.value) is int and 2019 < n.value < 2031
    ]


def test_no_module_but_the_edition_table_writes_a_year():
    sources = [p for pkg in ("ensemble", "members", "submissions", "benchmarks") for p in (ROOT / pkg).rglob("*.py")]
    found = {str(p.relative_to(ROOT)): _year_literals(p) for p in sources if p != ROOT / "ensemble" / "tasks.py"}
    assert {p: years for p, years in found.items() if years} == {}
    assert _year_literals(ROOT / "ensemble" / "tasks.py").count(DEFAULT_EDITION) >= 2


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A 2025-labelled simulated validation split and one member, whole and without its expr outputs."""
    root = tmp_path_factory.mktemp("editions")
    _, paths = write_simulated_dataset(root, videos=4, frames=40, members=1)
    table = read_table(paths[0])
    va_au = root / "va_au.parquet"
    table.data = table.data.drop(columns=[c for c in table.data if c.startswith("expr_")])
    table.meta.tasks = ("va", "au")
    from ensemble.contract import write_table

    write_table(table, va_au)
    return root, paths[0], va_au


def _row(stdout: str, name: str) -> list[str]:
    """The cells of the score table's row (or header) that starts with ``name``."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│")[1:-1]]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row {name!r} in {stdout}")


def test_evaluate_edition_2021_scores_compatible_labels_with_the_2021_rule(scored):
    root, _, va_au = scored
    result = invoke("evaluate", va_au, "--labels", root, "--edition", "2021")
    assert result.returncode == 0, result.stderr
    assert "edition 2021 (ABAW2) (given; the tables name 2025)" in result.stderr
    assert "AU acc" in result.stdout and "AU score" in result.stdout  # 2021 weighs in accuracy
    cells = _row(result.stdout, "m0")
    header = _row(result.stdout, "predictions")
    au = dict(zip(header, cells))
    from ensemble.labels import read_labels

    ed = EDITIONS[2021]
    truth = read_labels(root, "au", "val", ed).sort_values(["video", "frame"])
    pred = (read_table(va_au).data.sort_values(["video", "frame"])[ed.output_columns("au")].to_numpy() >= 0.5).astype(
        int
    )
    labels = truth[ed.label_columns("au")].to_numpy()
    f1 = sum(f1_score(labels[:, j], pred[:, j], zero_division=0) for j in range(12)) / 12
    acc = sum(accuracy_score(labels[:, j], pred[:, j]) for j in range(12)) / 12
    assert float(au["AU F1"]) == pytest.approx(f1, abs=6e-5)
    assert float(au["AU score"]) == pytest.approx(0.5 * f1 + 0.5 * acc, abs=6e-5)
    default = invoke("evaluate", va_au, "--labels", root)
    assert "edition 2025 (ABAW8) (from the tables' metadata)" in default.stderr and "AU acc" not in default.stdout


def test_evaluate_edition_2021_refuses_an_8_class_table_in_one_line(scored):
    root, whole, _ = scored
    result = invoke("evaluate", whole, "--labels", root, "--edition", "abaw2")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert errors == [
        f"error: {whole}: expr label set of edition 2025 (8 outputs) does not match edition 2021 (7 outputs)"
    ]


def test_an_edition_is_hashable_and_equal_to_itself():
    """Issue 24: Edition is frozen but holds dicts, so hash(get_edition(2025)) raised TypeError."""
    a, b = get_edition(2025), get_edition("ABAW8")
    assert hash(a) == hash(b) and {a: 1}[b] == 1 and len({a, b, get_edition(2024)}) == 2
