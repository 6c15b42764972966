"""The demo's folder layout is spelled once (``ensemble.cli.demo_layout.DemoLayout``): the demo writes through
it and ``report`` of a demo folder reads through it (issue 24: demo.py and report.py each spelled it), and the
demo's submissions come from the best tuned fusion by its score row, not by parsing display names."""

import pytest

from ensemble.cli.demo_layout import DemoLayout
from ensemble.errors import DataError


def test_a_report_reads_what_the_layout_names(tmp_path):
    layout = DemoLayout(tmp_path)
    with pytest.raises(DataError, match="not a demo run folder"):
        layout.report_sources()
    for folder in layout.folders():
        folder.mkdir(parents=True)
    layout.test_labels.mkdir(parents=True)
    written = [layout.prediction("cnn_a", "test"), layout.prediction("cnn_a", "val"), layout.fused("vote", "test")]
    for path in written + [layout.fusion("vote")]:
        path.write_text("")
    sources = layout.report_sources()
    assert sources.predictions == [layout.prediction("cnn_a", "test"), layout.fused("vote", "test")]
    assert sources.labels == layout.test_labels and sources.split == "test"
    assert sources.fusions == [layout.fusion("vote")]


def test_the_best_fusion_of_each_task_is_chosen_by_its_score():
    from ensemble.cli.demo_pipeline import best_fusions

    tuned = {
        "vote": {"name": "vote + post (out-of-fold)", "expr_score": 0.3, "va_score": 0.5, "au_score": 0.2},
        "my stack": {"name": "x", "expr_score": 0.4, "va_score": 0.1, "au_score": 0.6},
    }
    assert best_fusions(tuned) == {"expr": "my stack", "va": "vote", "au": "my stack"}
