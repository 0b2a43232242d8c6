"""Applying a search's chosen model to new records, and exporting it as a package (`python -m ecg.predict`).

    from ecg.predict import load_model, read_records
    model = load_model(Path("results/ecgnet-20261125-101500"))      # the run's chosen model and thresholds
    records = read_records(Path("new.npz"), model.manifest)          # at the run's leads, rate and length
    probs = model.probabilities(records); labels = model.decide(probs)

The model is described by a manifest (`ecg.predict.manifest`: models.json in a run folder, manifest.json in a
package); `ecg.predict.model` runs it, the one implementation the search's test evaluation uses too. Never
imports ray or optuna. See docs/predict.md.
"""
from ecg.predict.load import load_model, read_any_manifest
from ecg.predict.manifest import Manifest, ManifestError, MemberSpec, ModelSpec
from ecg.predict.model import ChosenModel, Member, PredictError, mean_probabilities
from ecg.predict.package import export_package
from ecg.predict.records import read_records, run_split

__all__ = ["ChosenModel", "Manifest", "ManifestError", "Member", "MemberSpec", "ModelSpec", "PredictError",
           "export_package", "load_model", "mean_probabilities", "read_any_manifest", "read_records", "run_split"]
