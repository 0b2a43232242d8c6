"""The model manifest: everything needed to apply a run's evaluated models to new records, as one JSON document.

A search writes it into its run folder as models.json when it evaluates the winners (`search.winners`); an
exported package holds it as manifest.json next to the weights. Both have the same fields:

- `classes`, `leads`, `fs`, `length`: the records the run read (class order, lead names, rate and samples per
  record): new records are read so, then brought to each member's own rate;
- `feature_scaling`: the training split's mean and spread of the hand-made features (`ecg.features`), which new
  records are standardised with (None when no model of the run uses features);
- `members`: one entry per trained model (a search trial): its flat config (`family`, `model/...`,
  `optim/...`, `data/fs`), its input rate and length, and where its weights are: in a run folder the trial's
  checkpoint folder relative to Ray's experiment folder (`tune/` in the run folder), in a package a
  `.safetensors` file relative to the package, with an optional ONNX graph;
- `models`: each evaluated model (rank1, rank2, ensemble_topk, ensemble_greedy, a retrained model) as its
  members with their ensemble weights, and its thresholds under every rule (`ecg.thresholds`) with the rule
  chosen on validation;
- `chosen`: the model and threshold rule a researcher should take (`search.winners.WinnerResults.chosen`);
- `fingerprint`, `source`, `code`: the data the run used and the code that made it;
- `files` (a package only): the SHA-256 of every file the package holds, so a changed file is refused.

No path in it is absolute, so a run folder or package can be moved or copied. Floats are written as JSON
numbers, which read back to the same float64: thresholds and weights are applied exactly as evaluated.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ecg.train.config import TrialConfig

FORMAT = "ecg-autosearch-model"
FORMAT_VERSION = 1


class ManifestError(ValueError):
    """A manifest that cannot be used; the message is one line naming the file and what is wrong."""


@dataclass
class MemberSpec:
    """One trained model of the manifest."""

    id: str  # the search trial's id (or the family, for a model retrained with python -m ecg.train)
    config: dict[str, Any]  # flat: family, model/..., optim/..., data/fs
    fs: int  # the rate its input records are at
    length: int  # samples per record at `fs`
    weights: str  # run: checkpoint folder relative to the experiment folder; package: file relative to it
    params: int | None = None
    onnx: str | None = None  # package: its ONNX graph, relative to the package
    onnx_max_abs_diff: float | None = None  # package: the parity check's largest probability difference

    @property
    def trial(self) -> TrialConfig:
        return TrialConfig.from_flat(self.config)

    @property
    def bf16(self) -> bool | None:
        """The member's own bf16 setting (None: autocast on CUDA only, as in training and evaluation)."""
        return self.trial.optim.bf16

    @property
    def uses_features(self) -> bool:
        return str(self.trial.model.get("features", "none")) != "none"

    def to_dict(self) -> dict[str, Any]:
        values = {"config": self.config, "fs": self.fs, "length": self.length, "weights": self.weights,
                  "params": self.params}
        if self.onnx is not None:
            values.update(onnx=self.onnx, onnx_max_abs_diff=self.onnx_max_abs_diff)
        return values


@dataclass
class ModelSpec:
    """One evaluated model: its members in order with their weights, and its thresholds under every rule."""

    name: str
    members: list[tuple[str, float]]  # (member id, weight); the weights of an ensemble sum to 1
    thresholds: dict[str, list[float]]  # rule -> one threshold per class
    rule: str  # the rule chosen on validation

    def to_dict(self) -> dict[str, Any]:
        return {"members": [[member, weight] for member, weight in self.members], "thresholds": self.thresholds,
                "rule": self.rule}


@dataclass
class Manifest:
    """See the module docstring."""

    classes: list[str]
    leads: list[str]
    fs: int
    length: int
    members: dict[str, MemberSpec]
    models: dict[str, ModelSpec]
    chosen: str  # the name of the model to take by default
    kind: str = "run"  # "run" (models.json in a run folder) or "package"
    metric: str = "val_micro_f1"
    feature_scaling: dict[str, Any] | None = None
    fingerprint: str | None = None
    source: str | None = None
    code: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def model(self, name: str | None = None) -> ModelSpec:
        """The model `name` (None: the chosen one); ManifestError listing the models otherwise."""
        name = self.chosen if name is None else name
        if name not in self.models:
            raise ManifestError(f"no model {name!r} here; the evaluated models are: {', '.join(self.models)}")
        return self.models[name]

    def to_dict(self) -> dict[str, Any]:
        values = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind, "chosen": self.chosen,
                  "metric": self.metric, "classes": self.classes, "leads": self.leads, "fs": self.fs,
                  "length": self.length, "feature_scaling": self.feature_scaling, "fingerprint": self.fingerprint,
                  "source": self.source, "code": self.code,
                  "members": {key: member.to_dict() for key, member in self.members.items()},
                  "models": {key: model.to_dict() for key, model in self.models.items()}}
        if self.files:
            values["files"] = self.files
        return values

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, values: Any, where: str) -> Manifest:
        """A manifest read back; ManifestError naming `where` (the file) and the first field at fault."""
        if not isinstance(values, dict) or values.get("format") != FORMAT:
            raise ManifestError(f"{where} is not an {FORMAT} manifest")
        if values.get("format_version") != FORMAT_VERSION:
            raise ManifestError(f"{where} has format version {values.get('format_version')!r}; this code reads "
                                f"version {FORMAT_VERSION} (use the code version it names: {values.get('code')})")
        try:
            members = {str(key): MemberSpec(id=str(key), config=dict(m["config"]), fs=int(m["fs"]),
                                            length=int(m["length"]), weights=str(m["weights"]),
                                            params=m.get("params"), onnx=m.get("onnx"),
                                            onnx_max_abs_diff=m.get("onnx_max_abs_diff"))
                       for key, m in values["members"].items()}
            models = {str(key): ModelSpec(name=str(key), members=[(str(i), float(w)) for i, w in m["members"]],
                                          thresholds={str(r): [float(t) for t in ts] for r, ts in m["thresholds"].items()},
                                          rule=str(m["rule"]))
                      for key, m in values["models"].items()}
            manifest = cls(classes=[str(c) for c in values["classes"]], leads=[str(lead) for lead in values["leads"]],
                           fs=int(values["fs"]), length=int(values["length"]), members=members, models=models,
                           chosen=str(values["chosen"]), kind=str(values.get("kind", "run")),
                           metric=str(values.get("metric", "val_micro_f1")),
                           feature_scaling=values.get("feature_scaling"), fingerprint=values.get("fingerprint"),
                           source=values.get("source"), code=dict(values.get("code") or {}),
                           files={str(k): str(v) for k, v in (values.get("files") or {}).items()})
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ManifestError(f"{where}: a field is missing or malformed ({type(err).__name__}: {err})") from None
        manifest.check(where)
        return manifest

    def check(self, where: str) -> None:
        """Every model names known members and has a threshold per class for each rule (ManifestError)."""
        if self.chosen not in self.models:
            raise ManifestError(f"{where}: the chosen model {self.chosen!r} is not among its models")
        for model in self.models.values():
            unknown = [member for member, _ in model.members if member not in self.members]
            if unknown or not model.members:
                raise ManifestError(f"{where}: model {model.name} names unknown members {unknown}")
            if model.rule not in model.thresholds:
                raise ManifestError(f"{where}: model {model.name}'s chosen rule {model.rule!r} has no thresholds")
            for rule, values in model.thresholds.items():
                if len(values) != len(self.classes):
                    raise ManifestError(f"{where}: model {model.name}, rule {rule}: {len(values)} thresholds for "
                                        f"{len(self.classes)} classes")


def read_manifest(path: Path) -> Manifest:
    """The manifest in `path` (ManifestError, one line, for a file that is not one)."""
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ManifestError(f"{path} is unreadable ({err})") from None
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path} is not valid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    return Manifest.from_dict(values, str(path))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_version() -> dict[str, Any]:
    """This code: the package's and torch's versions and the git commit (None outside a git checkout)."""
    import torch

    try:
        version = metadata.version("ecg-autosearch")
    except metadata.PackageNotFoundError:
        version = None
    try:
        commit = subprocess.run(["git", "-C", str(Path(__file__).resolve().parents[2]), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"ecg_autosearch": version, "torch": torch.__version__, "git_commit": commit}
