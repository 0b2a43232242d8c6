"""Command lines derived from their configs (ecg.cli.add_options): launch.py's from SearchOptions, python -m
ecg.train's data options from DataSpec; leads read the same way everywhere (8, 12, or names)."""
from __future__ import annotations

import dataclasses

import pytest

from ecg.data.dataset import ALL_12_LEADS, HEFEI_LEADS, lead_names
from ecg.data.source import DataSpec


@pytest.mark.parametrize("text, leads", [("8", HEFEI_LEADS), ("12", ALL_12_LEADS), (" 12 ", ALL_12_LEADS),
                                         ("I,II,V1", ("I", "II", "V1")), ("aVR, V6,", ("aVR", "V6"))])
def test_leads_are_8_12_or_names(text, leads) -> None:
    assert lead_names(text) == leads


def test_ecg_train_has_one_data_option_per_data_spec_field_it_documents() -> None:
    from ecg.train.__main__ import build_parser

    parser = build_parser()
    documented = {f.name for f in dataclasses.fields(DataSpec) if "help" in f.metadata}
    assert documented == {"data", "labels", "n_records", "fs", "length", "seed", "leads", "task", "skip_bad_records"}
    dests = {action.dest: action for action in parser._actions}  # noqa: SLF001
    assert documented <= set(dests)
    assert dests["seed"].option_strings == ["--split-seed"]
    args = parser.parse_args(["--leads", "12", "--split-seed", "3", "--fs", "100"])
    assert (args.leads, args.seed, args.fs, args.data) == (ALL_12_LEADS, 3, 100, None)  # None: not given
    with pytest.raises(SystemExit):
        parser.parse_args(["--task", "nonsense"])


def test_launch_options_are_the_search_options_fields() -> None:
    import importlib.util
    from pathlib import Path

    from search.options import SearchOptions

    spec = importlib.util.spec_from_file_location("launch", Path(__file__).resolve().parents[2] / "launch.py")
    launch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch)
    dests = {action.dest for action in launch.parser()._actions}  # noqa: SLF001
    fields = {f.name for f in dataclasses.fields(SearchOptions) if "help" in f.metadata}
    assert fields <= dests and dests - fields == {"help", "list_spaces"}
