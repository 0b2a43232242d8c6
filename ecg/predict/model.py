"""A run's evaluated model applied to records: the one implementation the search's test evaluation
(`search.winners`) and `python -m ecg.predict` share.

- `Member`: one trained model, loaded from its weights (a trial's checkpoint or a package's safetensors),
  predicting records at its own rate and length, in batches, with its bf16 policy;
- `mean_probabilities`: an ensemble's weighted mean of its members' probabilities (`ecg.ensemble.combine`);
- `ChosenModel`: a manifest's model (single or ensemble) with one threshold rule: brings records read at the
  run's rate to what each member takes (the hand-made features standardised with the run's training statistics,
  each member's rate), runs the members, averages them and applies the thresholds.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ecg.data.dataset import ECGDataset
from ecg.data.rates import resample_dataset
from ecg.ensemble import combine
from ecg.metrics import binarize
from ecg.predict.manifest import Manifest, MemberSpec, ModelSpec
from ecg.train.checkpoint import load_checkpoint
from ecg.train.predict import predict

BATCH_SIZE = 256  # records per forward pass at inference: the winners' test evaluation's and prediction's


class PredictError(ValueError):
    """A model or records that cannot be used as asked; the message is one line naming the file or value."""


def checkpoint_weights(directory: str) -> dict[str, torch.Tensor]:
    """The best epoch's weights of a trial's checkpoint folder (its last epoch's when it kept only those)."""
    state = load_checkpoint(directory)
    return state["best_model"] if state.get("best_model") is not None else state["model"]


@dataclass
class Member:
    """One trained model of a manifest and its network, in eval mode."""

    spec: MemberSpec
    module: nn.Module
    n_leads: int

    @classmethod
    def build(cls, spec: MemberSpec, weights: dict[str, torch.Tensor], *, n_leads: int, n_classes: int) -> Member:
        """The member's network from its config with `weights` loaded (strictly: every tensor, no other)."""
        module = spec.trial.build_model(n_leads=n_leads, n_classes=n_classes, length=spec.length)
        module.load_state_dict(weights)
        return cls(spec, module.eval(), n_leads)

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def predict(self, records: ECGDataset, *, device: str | torch.device = "cpu") -> np.ndarray:
        """Probabilities `[N, C]` (float32) for `records`, which must be at this member's rate and length."""
        if records.fs != self.spec.fs or records.n_samples != self.spec.length:
            raise PredictError(f"member {self.spec.id} takes {self.spec.length} samples at {self.spec.fs} Hz, "
                               f"got {records.n_samples} at {records.fs} Hz")
        return predict(self.module, records, device=device, batch_size=BATCH_SIZE, bf16=self.spec.bf16)


def mean_probabilities(probs: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """An ensemble's probabilities: the weighted mean of its members' (`ecg.ensemble.combine`); a single model's
    own probabilities unchanged."""
    if len(probs) == 1:
        return probs[0]
    return combine(list(probs), np.asarray(weights, dtype=np.float64))


class ChosenModel:
    """Model `spec` of `manifest` with the threshold rule `rule`, its members built (see the module docstring)."""

    def __init__(self, manifest: Manifest, spec: ModelSpec, rule: str, members: list[Member]) -> None:
        if rule not in spec.thresholds:
            raise PredictError(f"no threshold rule {rule!r} for model {spec.name}; its rules are: "
                               f"{', '.join(spec.thresholds)}")
        self.manifest, self.spec, self.rule, self.members = manifest, spec, rule, members
        self.weights = [weight for _, weight in spec.members]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def thresholds(self) -> np.ndarray:
        return np.asarray(self.spec.thresholds[self.rule], dtype=np.float64)

    @property
    def classes(self) -> list[str]:
        return list(self.manifest.classes)

    @property
    def needs_features(self) -> bool:
        return any(member.spec.uses_features for member in self.members)

    def describe(self) -> str:
        """One line: the model, its members with their rates and weights, the threshold rule."""
        members = ", ".join(f"{m.spec.id} ({m.spec.config.get('family')}, {m.spec.fs} Hz"
                            + (f", weight {w:.4g})" if len(self.members) > 1 else ")")
                            for m, w in zip(self.members, self.weights))
        return f"model {self.name}: {members}; thresholds {self.rule}"

    def prepare(self, records: ECGDataset) -> ECGDataset:
        """`records` (read at the run's leads, rate and length) with the hand-made features the members need,
        standardised with the run's training statistics (a copy: `records` is left as it is)."""
        manifest = self.manifest
        if [lead.lower() for lead in records.lead_names] != [lead.lower() for lead in manifest.leads]:
            raise PredictError(f"records with leads {' '.join(records.lead_names)}; the model takes "
                               f"{' '.join(manifest.leads)}")
        if records.fs != manifest.fs or records.n_samples != manifest.length:
            raise PredictError(f"records of {records.n_samples} samples at {records.fs} Hz; the model reads "
                               f"{manifest.length} at {manifest.fs} Hz first")
        prepared = dataclasses.replace(records, features=None)  # shares the signals (and their fingerprint)
        if self.needs_features:
            from ecg.features import cached_features
            from ecg.features.standardise import FeatureScaling

            if manifest.feature_scaling is None:
                raise PredictError("a member uses the hand-made features but the manifest has no feature "
                                   "standardisation")
            raw = cached_features(prepared)
            prepared.features = FeatureScaling.from_dict(manifest.feature_scaling).transform(raw.stats, raw.clinical)
        return prepared

    def at_rate(self, records: ECGDataset, member: Member) -> ECGDataset:
        """Prepared `records` at `member`'s rate: resampled by the search's filter (`ecg.data.rates`), not cached
        (new records are seldom predicted twice; the search's own splits are cached by the search)."""
        return resample_dataset(records, member.spec.fs, use_cache=False)

    def member_probabilities(self, records: ECGDataset, *, device: str | torch.device = "cpu") -> list[np.ndarray]:
        """Each member's probabilities for prepared `records`, each member at its own rate."""
        return [member.predict(self.at_rate(records, member), device=device) for member in self.members]

    def probabilities(self, records: ECGDataset, *, device: str | torch.device = "cpu") -> np.ndarray:
        """The model's probabilities `[N, C]` for `records` read at the run's leads, rate and length."""
        return mean_probabilities(self.member_probabilities(self.prepare(records), device=device), self.weights)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """0/1 predictions `[N, C]` under the thresholds (a class when its probability >= its threshold)."""
        return binarize(probs, self.thresholds)
