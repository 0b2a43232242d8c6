"""`--task cinc2021`: the 26 scored classes from the shipped tables, equivalent codes, unscored codes."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from ecg.data import DataError, load_dataset, load_labels
from ecg.data.cinc2021 import TABLES, apply_task, scoring, source_of
from ecg.data.tasks import check_task


def test_shipped_tables_give_26_classes_four_pairs_and_the_bsd_notice():
    score = scoring()
    assert len(score.class_names) == 26 and score.weights.shape == (26, 26)
    assert [n for n in score.class_names if "|" in n] == ["CLBBB|LBBB", "CRBBB|RBBB", "PAC|SVPB", "PVC|VPB"]
    assert score.class_names[score.normal_index] == "NSR"
    assert np.allclose(np.diag(score.weights), 1.0) and np.allclose(score.weights, score.weights.T)
    assert sum(len(codes) for codes in score.codes) == 30
    notice = (TABLES / "LICENSE").read_text()
    assert "BSD 2-Clause" in notice and "Copyright (c) 2020, 2021 PhysioNet/Computing in Cardiology" in notice


def test_equivalent_codes_become_one_class_and_unscored_codes_are_dropped(coded):
    # 59118001 RBBB and 713427006 CRBBB; 164909002 LBBB; 164873001 (LVH, unscored)
    raw = coded([["59118001"], ["713427006", "164909002"], ["164873001"]])
    with pytest.warns(UserWarning, match="1 unscored code.* 1 of 3 records have no scored label"):
        data = apply_task(raw, "cinc2021")
    assert data.class_names == list(scoring().class_names)
    crbbb, clbbb = data.class_names.index("CRBBB|RBBB"), data.class_names.index("CLBBB|LBBB")
    assert data.labels[:, crbbb].tolist() == [1, 1, 0]
    assert data.labels[:, clbbb].tolist() == [0, 1, 0]
    assert data.labels.sum(axis=1).tolist() == [1, 2, 0]  # the LVH-only record is kept without a label


def test_unscored_codes_kept_as_further_classes_by_abbreviation(coded):
    raw = coded([["164873001", "426783006"], ["999999"]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = apply_task(raw, "cinc2021+unscored")
    assert data.class_names[26:] == ["LVH", "999999"]  # a code in neither table keeps its code as name
    assert data.labels[:, 26:].tolist() == [[1, 0], [0, 1]]
    assert data.labels[:, data.class_names.index("NSR")].tolist() == [1, 0]


def test_labels_without_any_scored_code_are_an_error(coded):
    with pytest.raises(DataError, match="none of the labels .* is a scored SNOMED CT code"):
        apply_task(coded([["sinus"], ["afib"]]), "cinc2021")


def test_task_must_fit_the_data():
    with pytest.raises(DataError, match="--task cinc2021 needs a WFDB folder"):
        check_task("hefei", "cinc2021", "/data/hf")
    with pytest.raises(DataError, match="--task 'cinc' is unknown"):
        check_task("wfdb", "cinc", "/data/x")


@pytest.mark.parametrize("name,prefix", [("A0001", "A"), ("Q0001", "Q"), ("I0001", "I"), ("S0001", "S"),
                                         ("HR00001", "HR"), ("g1/E00001", "E"), ("training/ningbo/JS10647", "JS")])
def test_source_prefixes(name, prefix):
    assert source_of(name) == prefix


def test_real_sample_through_the_task(cinc_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, present = load_labels(cinc_dir, task="cinc2021")
        full = load_dataset(cinc_dir, task="cinc2021", use_cache=False)
    assert (len(data), present) == (50, 50)
    counts = dict(zip(data.class_names, data.labels.sum(axis=0).tolist()))
    # from the headers: 15 records carry 426783006, 23 carry 427084000, 20 carry 284470004 (PAC)
    assert (counts["NSR"], counts["STach"], counts["PAC|SVPB"]) == (15, 23, 20)
    assert int((data.labels.sum(axis=1) == 0).sum()) == 2
    assert full.class_names == data.class_names and np.array_equal(full.labels, data.labels)
    assert full.signals.shape == (50, 8, 5000)
