"""The demo's folder layout, spelled once: what ``affect-ens demo`` writes and what ``report`` reads from a demo
folder (a module of its own: the report of a demo folder needs no member code)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ensemble.errors import DataError
from ensemble.report import ReportSources


@dataclass(frozen=True)
class DemoLayout:
    """The demo's folder, spelled once: what the demo writes and what ``report`` reads from a demo folder."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    def run(self, name: str) -> Path:
        return self.root / "runs" / name

    @property
    def features(self) -> Path:
        return self.root / "features"

    def prediction(self, run: str, split: str) -> Path:
        return self.root / "predictions" / f"{run}_{split}.parquet"

    def fusion(self, method: str) -> Path:
        return self.root / "fusions" / f"{method}.json"

    def fused(self, method: str, split: str) -> Path:
        return self.root / "fused" / f"{method}_{split}.parquet"

    def submission(self, task: str) -> Path:
        return self.root / "submissions" / task

    @property
    def scores(self) -> Path:
        return self.root / "scores.json"

    @property
    def test_labels(self) -> Path:
        return self.data / "test_labels"

    def folders(self) -> list[Path]:
        """The folders the steps write files into."""
        return [self.features, self.root / "predictions", self.root / "fusions", self.root / "fused"]

    def report_sources(self) -> ReportSources:
        """What a report of a demo folder reads: the members' and fusions' test tables, the test labels, the
        fusions saved on validation."""
        tables = sorted(self.prediction("*", "test").parent.glob(self.prediction("*", "test").name))
        tables += sorted(self.fused("*", "test").parent.glob(self.fused("*", "test").name))
        if not tables or not self.test_labels.is_dir():
            raise DataError(
                f"{self.root}: not a demo run folder (no predictions/*_test.parquet or data/test_labels/); pass "
                "prediction tables and --labels"
            )
        return ReportSources(tables, self.test_labels, "test", sorted(self.fusion("*").parent.glob("*.json")))
