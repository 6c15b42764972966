"""The one edition table: competitions and years, tracks, layouts, how a command resolves its edition, that no
other module writes a year, and that tables of earlier versions (a year in their metadata) still work."""

import ast
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import run_here, write_simulated_dataset
from sklearn.metrics import accuracy_score, f1_score

from ensemble import tasks
from ensemble.contract import read_table, table_edition
from ensemble.errors import AffectEnsError, ContractError, SubmissionError
from ensemble.tasks import DEFAULT_EDITION, EDITIONS, PER_VIDEO, get_edition, resolve_edition, year_rules
from submissions import get_format

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "name, number",
    [
        ("abaw10", 10),
        ("ABAW10", 10),
        ("10th", 10),
        (" abaw3 ", 3),
        ("1st", 1),
        ("2nd", 2),
        ("3rd", 3),
        ("ABAW9", 9),
        ("2026", 10),  # a year of one competition names it
        (2021, 2),
        ("2023", 5),
    ],
)
def test_a_competition_is_named_by_its_abaw_number_or_its_year(name, number):
    edition = get_edition(name)
    assert edition.number == number and edition.also == () and edition is EDITIONS[number]


def test_competitions_venues_tracks_and_layouts():
    rows = {n: (ed.name, " ".join(ed.tracks), ed.layout) for n, ed in EDITIONS.items()}
    assert rows == {
        1: ("ABAW1 (FG 2020)", "expr va au", "per-video"),
        2: ("ABAW2 (ICCV 2021)", "expr va au", "per-video"),
        3: ("ABAW3 (CVPR 2022)", "expr va au mtl", "per-video"),
        4: ("ABAW4 (ECCV 2022)", "mtl", "per-video"),
        5: ("ABAW5 (CVPR 2023)", "expr va au", "single-file"),
        6: ("ABAW6 (CVPR 2024)", "expr va au", "single-file"),
        7: ("ABAW7 (ECCV 2024)", "mtl", "single-file"),
        8: ("ABAW8 (CVPR 2025)", "expr va au", "single-file"),
        9: ("ABAW9 (ICCV 2025)", "va", "single-file"),
        10: ("ABAW10 (CVPR 2026)", "expr va au", "single-file"),
    }
    assert get_edition("abaw7").track_layout("mtl") == get_edition(2022).track_layout("mtl") == "multi-task"
    assert [ed.number for ed in EDITIONS.values() if ed.sentinel_fill] == [2]
    assert get_edition(DEFAULT_EDITION) is EDITIONS[10]
    assert EDITIONS[10].folders["expr"] == "EXPR_Recognition_Challenge" == EDITIONS[6].folders["expr"]
    assert EDITIONS[5].folders["expr"] == "EXPR_Classification_Challenge" and EDITIONS[1].folders["expr"] == "EXPR_Set"


@pytest.mark.parametrize(
    "year, numbers, tracks",
    [(2022, (3, 4), "expr va au mtl"), (2024, (6, 7), "expr va au mtl"), (2025, (8, 9), "expr va au")],
)
def test_a_year_of_two_competitions_that_agree_names_their_rules_together(year, numbers, tracks):
    rules = get_edition(year)
    assert rules.numbers == numbers and " ".join(rules.tracks) == tracks and rules.key == str(year)
    for number in numbers:
        competition = EDITIONS[number]
        assert competition.rules() == rules.rules()
        for track in competition.tracks:
            assert get_format(track, competition).header == get_format(track, rules).header
            assert competition.track_layout(track) == rules.track_layout(track)


def test_2025_is_the_rules_of_abaw8_and_abaw9_which_agree_on_va():
    """The choice pinned: ABAW8 and ABAW9 both ran VA on Aff-Wild2 in the single-file layout with the same
    header and score (leeyubin10/9th-ABAW generate_result.py, FreedomPuppy77/Charon VA/test.py), so --edition 2025
    is one set of rules: ABAW8's three tracks, whose VA is ABAW9's."""
    rules = get_edition("2025")
    assert rules.name == "2025 (ABAW8 CVPR, ABAW9 ICCV)"
    assert rules.tracks == EDITIONS[8].tracks and "va" in EDITIONS[9].tracks
    assert {get_format("va", e).header for e in (rules, EDITIONS[8], EDITIONS[9])} == {"image_location,valence,arousal"}
    assert rules.track_layout("va") == EDITIONS[9].track_layout("va") == "single-file"


def test_a_year_whose_competitions_disagree_is_a_one_line_error_naming_them(monkeypatch):
    monkeypatch.setitem(EDITIONS, 9, replace(EDITIONS[9], layout=PER_VIDEO))
    with pytest.raises(
        AffectEnsError,
        match=r"^2025 held competitions whose submission layout differ: name one, "
        r"abaw8 \(ABAW8 \(CVPR 2025\)\) or abaw9 \(ABAW9 \(ICCV 2025\)\)$",
    ):
        year_rules.__wrapped__(2025)
    monkeypatch.setitem(EDITIONS, 9, replace(EDITIONS[9], au_weights=(0.5, 0.5)))
    with pytest.raises(AffectEnsError, match="whose label sets or scores differ"):
        year_rules.__wrapped__(2025)


@pytest.mark.parametrize("name", ["1999", "abaw11", "abaw0", "twenty", "2025x", "", "11th"])
def test_unknown_names_list_the_valid_ones(name):
    with pytest.raises(AffectEnsError) as info:
        get_edition(name)
    message = str(info.value)
    assert "abaw1 ... abaw10 (or 1st ... 10th)" in message or "years: 2020 ... 2026" in message
    assert "\n" not in message


def test_a_track_the_competition_did_not_run_names_those_that_did():
    with pytest.raises(SubmissionError) as info:
        get_edition("abaw9").track_layout("expr")
    ran = ", ".join(ed.name for n, ed in EDITIONS.items() if n != 4 and n != 7 and n != 9)
    assert str(info.value) == (
        f"no expr track in edition ABAW9 (ICCV 2025); it ran in: {ran} (tracks of ABAW9 (ICCV 2025): va)"
    )


def test_resolution_given_then_tables_then_default():
    assert resolve_edition("abaw6", [("a", "abaw10")]) == (EDITIONS[6], "given")
    assert resolve_edition(None, [("a", 2022), ("b", "2022")]) == (get_edition(2022), "from the tables' metadata")
    assert resolve_edition(None, [("a", 2023), ("b", "abaw5")]) == (EDITIONS[5], "from the tables' metadata")
    assert resolve_edition(None) == (EDITIONS[10], "the default")
    with pytest.raises(
        ContractError,
        match=r"the tables name different editions \(a says 2025 \(ABAW8 CVPR, ABAW9 ICCV\), b says ABAW10 "
        r"\(CVPR 2026\)\); pass --edition",
    ):
        resolve_edition(None, [("a", 2025), ("b", "abaw10")])


def test_an_explicit_edition_must_fit_every_table(tmp_path):
    _, paths = write_simulated_dataset(tmp_path, videos=2, frames=10, members=1)
    table = read_table(paths[0])
    assert table.meta.edition == "abaw10"
    assert table_edition(None, [table], ["m0"]) == (EDITIONS[10], "from the tables' metadata")
    assert table_edition(2023, [table], ["m0"])[0] is EDITIONS[5]
    with pytest.raises(
        ContractError,
        match=r"^m0: expr label set of edition ABAW10 \(CVPR 2026\) \(8 outputs\) does not match edition "
        r"ABAW2 \(ICCV 2021\)",
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
    assert sorted(set(_year_literals(ROOT / "ensemble" / "tasks.py"))) == tasks.YEARS


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """An ABAW10-labelled simulated validation split and one member, whole and without its expr outputs."""
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
    result = run_here("evaluate", va_au, "--labels", root, "--edition", "2021")
    assert result.returncode == 0, result.stderr
    assert "edition ABAW2 (ICCV 2021) (given; the tables name ABAW10 (CVPR 2026))" in result.stderr
    assert "AU acc" in result.stdout and "AU score" in result.stdout  # 2021 weighs in accuracy
    cells = _row(result.stdout, "m0")
    header = _row(result.stdout, "predictions")
    au = dict(zip(header, cells))
    from ensemble.labels import read_labels

    ed = EDITIONS[2]
    truth = read_labels(root, "au", "val", ed).sort_values(["video", "frame"])
    pred = (read_table(va_au).data.sort_values(["video", "frame"])[ed.output_columns("au")].to_numpy() >= 0.5).astype(
        int
    )
    labels = truth[ed.label_columns("au")].to_numpy()
    f1 = sum(f1_score(labels[:, j], pred[:, j], zero_division=0) for j in range(12)) / 12
    acc = sum(accuracy_score(labels[:, j], pred[:, j]) for j in range(12)) / 12
    assert float(au["AU F1"]) == pytest.approx(f1, abs=6e-5)
    assert float(au["AU score"]) == pytest.approx(0.5 * f1 + 0.5 * acc, abs=6e-5)
    default = run_here("evaluate", va_au, "--labels", root)
    assert "edition ABAW10 (CVPR 2026) (from the tables' metadata)" in default.stderr and "AU acc" not in default.stdout


def test_evaluate_edition_2021_refuses_an_8_class_table_in_one_line(scored):
    root, whole, _ = scored
    result = run_here("evaluate", whole, "--labels", root, "--edition", "abaw2")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert errors == [
        f"error: {whole}: expr label set of edition ABAW10 (CVPR 2026) (8 outputs) does not match edition "
        "ABAW2 (ICCV 2021) (7 outputs)"
    ]


def test_an_edition_is_hashable_and_equal_to_itself():
    """Issue 24: Edition is frozen but holds dicts, so hash(get_edition(2025)) raised TypeError."""
    a, b, c = get_edition(2025), get_edition("2025"), get_edition("ABAW10")
    assert hash(a) == hash(b) and {a: 1}[b] == 1 and len({a, b, c, get_edition("10th")}) == 2


def _expr_f1(root: Path, table: Path) -> float:
    """Macro F1 over the 8 classes of the table's arg-max against the validation labels, by sklearn."""
    from ensemble.labels import read_labels

    ed = EDITIONS[10]
    truth = read_labels(root, "expr", "val", ed)
    data = read_table(table).data
    data = data.assign(pred=data[ed.output_columns("expr")].to_numpy().argmax(axis=1))
    merged = truth.merge(data[["video", "frame", "pred"]], on=["video", "frame"])
    return f1_score(merged["expr"], merged["pred"], labels=list(range(8)), average="macro", zero_division=0)


@pytest.mark.parametrize("folder", ["EXPR_Recognition_Challenge", "EXPR_Classification_Challenge", "EXPR_Set"])
def test_evaluate_scores_expr_under_every_release_name(scored, tmp_path, folder):
    """6th ABAW on (EXPR_Recognition_Challenge), 2022 (EXPR_Classification_Challenge), 2020 (EXPR_Set); the
    release unpacked one level below the root given, as '6th ABAW Annotations/' is."""
    root, whole, _ = scored
    release = tmp_path / "6th ABAW Annotations"
    shutil.copytree(root / "EXPR_Recognition_Challenge", release / folder)
    for track in ("VA_Estimation_Challenge", "AU_Detection_Challenge"):
        shutil.copytree(root / track, release / track)
    result = run_here("evaluate", whole, "--labels", tmp_path)
    assert result.returncode == 0, result.stderr
    scores = dict(zip(_row(result.stdout, "predictions"), _row(result.stdout, "m0")))
    assert float(scores["EXPR F1"]) == pytest.approx(_expr_f1(root, whole), abs=6e-5)


def test_a_table_without_metadata_is_scored_as_the_default_edition_and_the_note_says_so(scored, tmp_path):
    root, whole, _ = scored
    csv = tmp_path / "m0.csv"
    read_table(whole).data.to_csv(csv, index=False)
    result = run_here("evaluate", csv, "--labels", root)
    assert result.returncode == 0, result.stderr
    assert "edition ABAW10 (CVPR 2026) (the default: the tables name no edition)" in result.stderr
    assert "AU acc" not in result.stdout  # scored by ABAW10's rules: F1 alone
    scores = dict(zip(_row(result.stdout, "predictions"), _row(result.stdout, "m0")))
    assert float(scores["EXPR F1"]) == pytest.approx(_expr_f1(root, whole), abs=6e-5)


def _old_table(table, path: Path, year: int) -> Path:
    """``table`` as the previous version wrote it: Parquet whose affect-ens metadata names a year."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = {"tasks": list(table.meta.tasks), "edition": year, "member": path.stem, "split": "val"}
    meta |= {"extra": {}, "version": 1, "generator": "affect-ens 0.1.0"}
    arrow = pa.Table.from_pandas(table.data, preserve_index=False)
    pq.write_table(arrow.replace_schema_metadata({b"affect_ens": json.dumps(meta).encode()}), path)
    return path


def test_tables_and_fusions_of_the_previous_version_still_evaluate_fuse_and_submit(scored, tmp_path):
    """A fixture in the old format, made here: member tables whose metadata say 2025, and a fusion file as
    ``fuse --save-fusion`` wrote it (no edition in it)."""
    import json

    root, whole, _ = scored
    table = read_table(whole)
    old = [_old_table(table, tmp_path / f"old{i}.parquet", 2025) for i in range(2)]
    note = "edition 2025 (ABAW8 CVPR, ABAW9 ICCV) (from the tables' metadata)"
    evaluated = run_here("evaluate", *old, "--labels", root)
    assert evaluated.returncode == 0 and note in evaluated.stderr
    assert float(dict(zip(_row(evaluated.stdout, "predictions"), _row(evaluated.stdout, "old0")))["EXPR F1"]) == (
        pytest.approx(_expr_f1(root, whole), abs=6e-5)
    )
    fused = run_here("fuse", *old, "--labels", root, "--out", tmp_path / "fused.parquet", "--no-smooth")
    assert fused.returncode == 0 and note in fused.stderr, fused.stderr
    fusion = tmp_path / "old_fusion.json"
    average = {"method": "average", "params": {"weights": None, "tune": False, "rounds": 25}}
    average["learned"] = {"members_": ["old0", "old1"], "weights_": {}}
    fusion.write_text(json.dumps({"generator": "affect-ens 0.1.0", "fuser": average, "post": None, "scores": []}))
    applied = run_here("fuse", *old, "--load-fusion", fusion, "--out", tmp_path / "averaged.parquet")
    assert applied.returncode == 0 and note in applied.stderr, applied.stderr
    assert read_table(tmp_path / "averaged.parquet").meta.edition == "2025"
    images = [f"{v}/{f:05d}.jpg" for v, f in table.data[["video", "frame"]].itertuples(index=False)]
    example = tmp_path / "CVPR_8th_ABAW_VA_test_set_sample.txt"
    example.write_text("image_location,valence,arousal\n" + "".join(f"{i},\n" for i in images))
    out = tmp_path / "sub"
    submitted = run_here("submit", tmp_path / "averaged.parquet", "--track", "va", "--frames", example, "--out", out)
    assert submitted.returncode == 0 and note in submitted.stderr, submitted.stderr
    lines = (out / "predictions" / "predictions.txt").read_text().splitlines()
    assert lines[0] == "image_location,valence,arousal" and [ln.split(",")[0] for ln in lines[1:]] == images


def test_metadata_naming_no_known_edition_is_a_one_line_error(scored, tmp_path):
    _, whole, _ = scored
    path = _old_table(read_table(whole), tmp_path / "odd.parquet", 1999)
    with pytest.raises(ContractError, match=r"odd.parquet: metadata names unknown ABAW edition '1999'; name a comp"):
        read_table(path)
