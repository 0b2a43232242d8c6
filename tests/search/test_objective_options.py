"""--objectives, --max-params and --max-latency-ms validation (SearchOptions), refused in one line by launch.py."""
from __future__ import annotations

import pytest

from search.options import OptionError, SearchOptions


def test_objectives_set_the_metric_and_the_reported_columns() -> None:
    options = SearchOptions(objectives=" val_macro_f1, latency_ms ,params")
    assert options.objectives == "val_macro_f1,latency_ms,params" and options.metric == "val_macro_f1"
    assert options.objective_columns == [("best_so_far_val_macro_f1", "max"), ("latency_ms_b1", "min"),
                                         ("params", "min")]
    assert SearchOptions().objective_columns == [("best_so_far_val_micro_f1", "max")]
    assert SearchOptions(objectives="val_loss,macs").objective_columns[0] == ("best_so_far_val_loss", "min")


@pytest.mark.parametrize("values, message", [
    ({"objectives": "val_micro_f1"}, "give the selection metric and at least one cost"),
    ({"objectives": "params,val_micro_f1"}, "the first must be a selection metric"),
    ({"objectives": "val_micro_f1,flops"}, "'flops' is not a cost; choose from params, macs, latency_ms"),
    ({"objectives": "val_micro_f1,params,params"}, "names an objective twice"),
    ({"objectives": "val_micro_f1,params", "metric": "val_loss"}, "--metric val_loss differs from the first"),
    ({"max_params": 0}, "--max-params must be an integer >= 1, got 0"),
    ({"max_latency_ms": -1.0}, "--max-latency-ms must be > 0, got -1.0"),
])
def test_bad_objectives_and_budgets_are_refused(values, message) -> None:
    with pytest.raises(OptionError, match=message.replace("(", r"\(")):
        SearchOptions(**values)


def test_launch_refuses_them_in_one_line(capsys, tmp_path) -> None:
    import launch

    assert launch.main(["--objectives", "val_micro_f1,flops", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("launch.py: error: --objectives") and len(err.splitlines()) == 1
