from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import random_table

from ensemble.contract import PredictionTable, read_table, write_table
from ensemble.errors import ContractError, DataError


def test_round_trip_parquet_keeps_values_and_metadata(tmp_path):
    table = random_table(seed=1, member="resnet")
    table.meta.extra["filled_frames"] = 3
    write_table(table, tmp_path / "p.parquet")
    back = read_table(tmp_path / "p.parquet")
    assert back.meta.member == "resnet" and back.meta.tasks == ("expr", "va", "au")
    assert back.meta.extra == {"filled_frames": 3}
    pd.testing.assert_frame_equal(back.data, table.data.astype(back.data.dtypes.to_dict()))


def test_write_sorts_rows_by_key(tmp_path):
    table = random_table(tasks=("va",))
    table.data = table.data.iloc[::-1].reset_index(drop=True)
    back = read_table(write_table(table, tmp_path / "p.parquet"))
    assert back.data["frame"].tolist()[:3] == [1, 2, 3] and back.data["video"].iloc[0] == "a"


def test_csv_with_other_class_order_is_read_by_name(tmp_path):
    table = random_table(tasks=("expr",), seed=2)
    cols = list(table.data.columns)
    shuffled = table.data[cols[:2] + cols[2:][::-1]]
    shuffled.to_csv(tmp_path / "ext.csv", index=False)
    back = read_table(tmp_path / "ext.csv")
    assert back.meta.member == "ext" and back.meta.edition == "abaw10"
    np.testing.assert_allclose(back.outputs("expr"), table.outputs("expr"), atol=1e-6)


def test_csv_with_seven_classes_infers_the_2021_label_set(tmp_path):
    table = random_table(tasks=("expr",), edition=2020, seed=2)
    table.data.to_csv(tmp_path / "old.csv", index=False)
    assert read_table(tmp_path / "old.csv").meta.edition == "abaw2"
    with pytest.raises(
        ContractError, match=r"label set of edition ABAW2 \(ICCV 2021\) .7 outputs. does not match edition 2025"
    ):
        read_table(tmp_path / "old.csv", edition=2025)


def _broken(mutate):
    table = random_table(tasks=("expr", "va"), seed=4)
    table.data = mutate(table.data.copy())
    return table


def _set(col, row, value):
    def mutate(d):
        d[col] = d[col].astype(object) if isinstance(value, str) else d[col]
        d.loc[row, col] = value
        return d

    return mutate


def _renorm_row(d):
    cols = [c for c in d.columns if c.startswith("expr_")]
    d.loc[5, cols] = d.loc[5, cols] * 0.5
    return d


CASES = {
    "missing column": (lambda d: d.drop(columns=["arousal"]), r"p.parquet: missing columns: 1 \(arousal\)$"),
    "misnamed column": (
        lambda d: d.rename(columns={"expr_fear": "expr_afraid"}),
        r"missing columns: 1 \(expr_fear\); unexpected: expr_afraid",
    ),
    "extra column": (lambda d: d.assign(confidence=1.0), r"unexpected columns: 1 \(confidence\)"),
    "empty": (lambda d: d.iloc[:0], "empty table: 0 rows"),
    "frame dtype": (lambda d: d.assign(frame=d["frame"].astype(float) + 0.5), "column 'frame' must hold integers"),
    "value dtype": (_set("valence", 3, "high"), "column 'valence' must be numeric"),
    "nan": (_set("valence", 3, np.nan), r"NaN or infinite va values: 1 row\(s\), first at video 'a' frame 4"),
    "inf": (_set("expr_anger", 7, np.inf), "NaN or infinite expr values: 1 row"),
    "va range": (_set("arousal", 21, 1.5), r"va values outside \[-1, 1\]: 1 row\(s\), first at video 'b' frame 2"),
    "prob range": (_set("expr_anger", 2, -0.2), r"expr probabilities outside \[0, 1\]"),
    "sum": (
        _renorm_row,
        r"expression probabilities do not sum to 1 \(\+-0.01\): 1 row\(s\), first at video 'a' frame 6",
    ),
    "duplicate": (
        lambda d: pd.concat([d, d.iloc[[10, 11]]]),
        r"duplicate \(video, frame\) keys: 2 row\(s\), first at video 'a' frame 11",
    ),
    "frame zero": (_set("frame", 0, 0), "frame numbers below 1: 1 row"),
}


@pytest.mark.parametrize("case", CASES)
def test_each_malformed_table_raises_its_own_message(tmp_path, case):
    mutate, message = CASES[case]
    path = tmp_path / "p.parquet"
    with pytest.raises(ContractError, match=message):
        write_table(_broken(mutate), path)
    assert not path.exists() and not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("case", ["nan", "sum", "duplicate", "misnamed column"])
def test_malformed_csv_is_rejected_on_read(tmp_path, case):
    mutate, message = CASES[case]
    _broken(mutate).data.to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(ContractError, match=message.replace("p.parquet", "p.csv")):
        read_table(tmp_path / "p.csv")


def test_unreadable_files(tmp_path):
    write_table(random_table(), tmp_path / "ok.parquet")
    raw = (tmp_path / "ok.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ContractError, match="cut.parquet: not a readable Parquet file"):
        read_table(tmp_path / "cut.parquet")
    (tmp_path / "text.parquet").write_text("video,frame\n")
    with pytest.raises(ContractError, match="not a readable Parquet file"):
        read_table(tmp_path / "text.parquet")
    with pytest.raises(DataError, match="missing.parquet: prediction file not found"):
        read_table(tmp_path / "missing.parquet")
    with pytest.raises(ContractError, match="unknown table format '.xlsx'"):
        (tmp_path / "a.xlsx").write_text("x")
        read_table(tmp_path / "a.xlsx")


def test_outputs_are_float32_in_task_order():
    table = random_table(tasks=("au",), edition=2020)
    checked = PredictionTable(table.data, table.meta)
    assert checked.outputs("au").shape == (40, 8) and checked.outputs("au").dtype == np.float32


def test_interrupted_write_leaves_neither_output_nor_temp_file(tmp_path, monkeypatch):
    import ensemble.contract as contract

    def interrupted(table, where):
        Path(where).write_bytes(b"PAR1 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(contract.pq, "write_table", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_table(random_table(), tmp_path / "fused.parquet")
    assert list(tmp_path.iterdir()) == []
