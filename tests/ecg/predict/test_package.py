"""The parts of `ecg.predict` without a search: the manifest read back exactly, packages written whole or not at
all and refused when a file does not match, unlabelled records, the lead check. Quick (no Ray)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from ecg.data import HEFEI_LEADS, DataError, load_dataset
from ecg.ensemble import combine
from ecg.features.standardise import FeatureScaling, model_inputs
from ecg.predict import (ChosenModel, Manifest, ManifestError, Member, MemberSpec, ModelSpec, PredictError,
                         export_package, load_model, mean_probabilities)
from ecg.predict.records import missing_leads
from ecg.synthetic import generate

MODEL = {"version": "v3", "width": 4, "width_1d": 8, "blocks_2d": 1, "blocks_1d": 2, "downsamples_1d": 2, "stem_kernel": 7,
         "use_age_sex": True}
CLASSES = generate(1, seed=0, fs=100, length=1000).class_names


def chosen_model(members: int = 2) -> ChosenModel:
    """An ensemble of `members` small ECGNets at 100 Hz x 1,000 samples, with made-up thresholds."""
    specs, built = {}, []
    for index in range(members):
        torch.manual_seed(index)
        spec = MemberSpec(id=f"t{index}", config={"family": "ecgnet", **{f"model/{k}": v for k, v in MODEL.items()},
                                                  "data/fs": 100}, fs=100, length=1000, weights="")
        module = spec.trial.build_model(n_leads=8, n_classes=len(CLASSES), length=1000)
        specs[spec.id] = spec
        built.append(Member(spec, module.eval(), 8))
    weights = [float(w) for w in np.random.default_rng(0).dirichlet(np.ones(members))]  # floats of 17 digits
    model = ModelSpec(name="ensemble_greedy", members=[(s, w) for s, w in zip(specs, weights)], rule="per_class",
                      thresholds={"0.5": [0.5] * len(CLASSES), "global": [0.35] * len(CLASSES),
                                  "per_class": list(np.linspace(0.1, 0.7, len(CLASSES)) + 1e-17)})
    manifest = Manifest(classes=list(CLASSES), leads=list(HEFEI_LEADS), fs=100, length=1000, members=specs,
                        models={model.name: model}, chosen=model.name)
    return ChosenModel(manifest, model, model.rule, built)


@pytest.fixture
def records() -> object:
    return generate(6, seed=3, fs=100, length=1000)


def test_a_manifest_reads_back_to_the_same_floats() -> None:
    manifest = chosen_model(3).manifest
    text = json.dumps(manifest.to_dict())
    again = Manifest.from_dict(json.loads(text), "m.json")
    assert again.models["ensemble_greedy"].thresholds == manifest.models["ensemble_greedy"].thresholds
    assert again.models["ensemble_greedy"].members == manifest.models["ensemble_greedy"].members
    assert again.members["t1"].config == manifest.members["t1"].config and again.members["t1"].bf16 is None
    assert again.to_dict() == manifest.to_dict()


@pytest.mark.parametrize("change, message", [
    (lambda v: v.update(format="other"), "m.json is not an ecg-autosearch-model manifest"),
    (lambda v: v.update(format_version=9), "m.json has format version 9; this code reads version 1"),
    (lambda v: v.pop("classes"), "m.json: a field is missing or malformed (KeyError: 'classes')"),
    (lambda v: v["models"]["ensemble_greedy"]["members"].append(["zz", 0.1]),
     "m.json: model ensemble_greedy names unknown members ['zz']"),
    (lambda v: v["models"]["ensemble_greedy"]["thresholds"]["global"].pop(),
     "m.json: model ensemble_greedy, rule global: 25 thresholds for 26 classes"),
    (lambda v: v.update(chosen="rank1"), "m.json: the chosen model 'rank1' is not among its models"),
])
def test_a_malformed_manifest_is_refused_in_one_line(change, message) -> None:
    values = chosen_model().manifest.to_dict()
    change(values)
    with pytest.raises(ManifestError) as error:
        Manifest.from_dict(values, "m.json")
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_single_models_probabilities_pass_unchanged_and_an_ensembles_are_its_weighted_mean() -> None:
    probs = [np.random.default_rng(i).random((4, 3)).astype(np.float32) for i in range(2)]
    assert mean_probabilities(probs[:1], [1.0]) is probs[0]
    assert np.array_equal(mean_probabilities(probs, [0.25, 0.75]), combine(probs, np.array([0.25, 0.75])))
    assert np.allclose(mean_probabilities(probs, [0.25, 0.75]), 0.25 * probs[0] + 0.75 * probs[1])


def test_a_package_predicts_as_the_model_it_was_exported_from(tmp_path, records) -> None:
    model = chosen_model()
    expected = model.probabilities(records)
    manifest = export_package(model, tmp_path / "package")
    assert sorted(os.listdir(tmp_path)) == ["package"]  # no temporary folder left beside it
    assert sorted(manifest.files) == ["members/t0.safetensors", "members/t1.safetensors"]
    assert all(os.stat(p).st_mode & 0o044 == 0o044 for p in (tmp_path / "package").rglob("*") if p.is_file())
    again = load_model(tmp_path / "package")
    assert again.name == "ensemble_greedy" and again.rule == "per_class"
    assert np.array_equal(again.probabilities(records), expected)
    assert np.array_equal(again.decide(expected), (expected >= again.thresholds).astype(np.uint8))
    assert load_model(tmp_path / "package", rule="0.5").thresholds.tolist() == [0.5] * len(CLASSES)


def test_a_package_with_a_missing_or_unlisted_file_is_refused(tmp_path) -> None:
    export_package(chosen_model(), tmp_path / "package")
    (tmp_path / "package" / "members" / "t1.safetensors").unlink()
    with pytest.raises(PredictError, match=r"t1\.safetensors is missing from the package; export it again$"):
        load_model(tmp_path / "package")
    manifest = json.loads((tmp_path / "package" / "manifest.json").read_text())
    manifest["files"].pop("members/t1.safetensors")
    (tmp_path / "package" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PredictError, match=r"lists no checksum for members/t1\.safetensors: the package is incomplete"):
        load_model(tmp_path / "package")


def test_an_export_that_fails_leaves_nothing_and_never_overwrites(tmp_path, monkeypatch) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(PredictError, match=r"taken already exists; export into a new folder$"):
        export_package(chosen_model(), tmp_path / "taken")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("ecg.predict.package.sha256", full_disk)
    with pytest.raises(OSError, match="No space left"):
        export_package(chosen_model(), tmp_path / "new")
    assert sorted(os.listdir(tmp_path)) == ["taken"]


def test_unlabelled_npz_records_are_read_only_when_asked(tmp_path) -> None:
    data = generate(3, seed=1, fs=100, length=1000)
    np.savez(tmp_path / "new.npz", signals=data.signals, fs=100, lead_names=np.array(data.lead_names))
    records = load_dataset(tmp_path / "new.npz", fs=100, length=1000, require_labels=False, use_cache=False)
    assert records.labels.shape == (3, 0) and records.class_names == [] and records.record_ids == ["0", "1", "2"]
    assert np.array_equal(records.signals, data.signals)
    with pytest.raises(DataError, match=r"new\.npz: missing array\(s\) labels, class_names"):
        load_dataset(tmp_path / "new.npz", fs=100, length=1000, use_cache=False)
    np.savez(tmp_path / "half.npz", signals=data.signals, labels=data.labels)  # labels without their names
    with pytest.raises(DataError, match=r"half\.npz: missing array\(s\) class_names"):
        load_dataset(tmp_path / "half.npz", fs=100, length=1000, require_labels=False, use_cache=False)


def test_the_lead_check_knows_which_leads_can_be_derived() -> None:
    assert missing_leads(["I", "II", "V1"], ["I", "III", "aVF", "V1"]) == []  # III and aVF from I and II
    assert missing_leads(["i", "ii"], ["I", "V5", "V6"]) == ["V5", "V6"]
    assert missing_leads(["II", "V1"], ["aVR"]) == ["aVR"]  # needs I too


def test_the_feature_scaling_is_the_one_the_model_inputs_were_made_with() -> None:
    rng = np.random.default_rng(0)
    stats, clinical = rng.normal(size=(10, 4)), rng.normal(size=(10, 3))
    clinical[2, 1] = np.nan
    train = np.arange(10) < 7
    scaling = FeatureScaling.fit(stats, clinical, train)
    again = FeatureScaling.from_dict(json.loads(json.dumps(scaling.to_dict())))
    assert np.array_equal(again.transform(stats, clinical), model_inputs(stats, clinical, train))


def test_predicting_with_a_package_imports_neither_ray_nor_optuna_nor_search(tmp_path) -> None:
    import subprocess
    import sys

    export_package(chosen_model(), tmp_path / "package")
    data = generate(2, seed=5, fs=500, length=5000)
    np.savez(tmp_path / "new.npz", signals=data.signals, fs=500, lead_names=np.array(data.lead_names))
    code = ("import sys; from ecg.predict.__main__ import main; "
            f"main([{str(tmp_path / 'package')!r}, '--data', {str(tmp_path / 'new.npz')!r}, '--out', "
            f"{str(tmp_path / 'p.csv')!r}]); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'optuna', 'search'}))")
    env = {**os.environ, "ECG_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert len(np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1, usecols=1)) == 2
