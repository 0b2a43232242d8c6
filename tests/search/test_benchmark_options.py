"""launch.py's --task/--split/--leads/--fs and the metric each dataset defaults to (no Ray)."""
from __future__ import annotations

import pytest

from search.data import data_spec
from search.options import OptionError, SearchOptions


def test_each_dataset_defaults_to_its_convention(ptbxl_dir, cinc_dir, hefei_dir):
    assert SearchOptions(data=ptbxl_dir).metric == "val_macro_auc"
    assert SearchOptions(data=ptbxl_dir).convention() == {"task": "all", "split": "official", "metric": "val_macro_auc"}
    assert SearchOptions(data=ptbxl_dir, metric="val_micro_f1").metric == "val_micro_f1"  # overridable
    assert SearchOptions(data=cinc_dir, task="cinc2021").metric == "val_challenge_score"
    assert SearchOptions(data=cinc_dir).metric == "val_micro_f1"
    assert SearchOptions(data=hefei_dir).convention() == {"task": None, "split": "stratified", "metric": "val_micro_f1"}
    assert SearchOptions().metric == "val_micro_f1"  # the synthetic set


def test_the_data_spec_carries_task_split_rate_and_leads(ptbxl_dir):
    spec = data_spec(SearchOptions(data=ptbxl_dir, task="rhythm", fs=100, leads=12).resolved(0))
    assert (spec.task, spec.split, spec.fs, spec.length, len(spec.leads)) == ("rhythm", "official", 100, 1000, 12)
    spec = data_spec(SearchOptions(data=ptbxl_dir, split="stratified").resolved(0))
    assert (spec.task, spec.split, spec.fs, spec.length, len(spec.leads)) == ("all", "stratified", 500, 5000, 8)


@pytest.mark.parametrize("options,message", [
    ({"task": "cinc2021"}, "--task cinc2021 needs --data"),
    ({"data": "CINC", "metric": "val_challenge_score"}, "--metric val_challenge_score needs --task cinc2021"),
    ({"data": "CINC", "split": "official"}, "wfdb data has no official split"),
    ({"data": "PTBXL", "task": "cinc2021"}, "--task cinc2021 needs a WFDB folder"),
    ({"data": "HEFEI", "task": "rhythm"}, "--task rhythm needs a PTB-XL folder"),
    ({"leads": 10}, "--leads must be 8 or 12"),
])
def test_what_does_not_fit_is_refused_in_one_line(ptbxl_dir, cinc_dir, hefei_dir, options, message):
    paths = {"CINC": cinc_dir, "PTBXL": ptbxl_dir, "HEFEI": hefei_dir}
    options = {k: paths.get(v, v) if isinstance(v, str) else v for k, v in options.items()}
    with pytest.raises(OptionError, match=message):
        SearchOptions(**options)
