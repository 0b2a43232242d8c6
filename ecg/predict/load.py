"""Finding a model to apply: a run folder (its models.json and the trials' checkpoints) or an exported package
(its manifest.json, checked file by file, and its safetensors). Nothing is unpickled: weights are safetensors,
the rest of a checkpoint is read with `torch.load(weights_only=True)`."""
from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file

from ecg.predict.manifest import Manifest, ManifestError, read_manifest, sha256
from ecg.predict.model import ChosenModel, Member, PredictError, checkpoint_weights
from ecg.run_folder import MODELS, RUN_FILE, RunFolder, RunFolderError

PACKAGE_MANIFEST = "manifest.json"


def is_package(path: Path) -> bool:
    return (Path(path) / PACKAGE_MANIFEST).is_file()


def is_run_folder(path: Path) -> bool:
    return (Path(path) / RUN_FILE).is_file()


def load_model(path: Path, *, model: str | None = None, rule: str | None = None,
               manifest: Manifest | None = None) -> ChosenModel:
    """Model `model` (default: the chosen one) of the run folder or package at `path`, with threshold rule
    `rule` (default: the one chosen on validation for it). PredictError, one line, when it cannot be used."""
    path = Path(path)
    manifest = manifest or read_any_manifest(path)
    spec = manifest.model(model)
    experiment = None if is_package(path) else RunFolder.open(path).experiment_dir(_storage_path(path))
    members = []
    for member_id, _ in spec.members:
        member = manifest.members[member_id]
        weights = _package_weights(path, member.weights) if experiment is None else \
            _checkpoint_weights(experiment, member.weights, member_id)
        try:
            members.append(Member.build(member, weights, n_leads=len(manifest.leads),
                                        n_classes=len(manifest.classes)))
        except (RuntimeError, ValueError, KeyError) as err:  # weights that do not fit the config
            if isinstance(err, PredictError):
                raise
            raise PredictError(f"{path}: the weights of member {member_id} do not fit its config "
                               f"({' '.join(str(err).split())[:200]})") from None
    return ChosenModel(manifest, spec, rule or spec.rule, members)


def read_any_manifest(path: Path) -> Manifest:
    """The manifest of a package (checked against its files) or of a run folder; PredictError, one line."""
    path = Path(path)
    try:
        if is_package(path):
            manifest = read_manifest(path / PACKAGE_MANIFEST)
            verify_files(path, manifest)
            return manifest
        if is_run_folder(path):
            folder = RunFolder.open(path)
            values = folder.read_json(MODELS)
            if values is None:
                raise PredictError(
                    f"{path} has no {MODELS} (the run was made before its models were recorded for prediction); "
                    f"write it with: python -m search.winners {path} (re-evaluates the winners from their "
                    "checkpoints), then try again")
            return Manifest.from_dict(values, str(folder.file(MODELS)))
    except (ManifestError, RunFolderError) as err:
        raise PredictError(str(err)) from None
    if not path.exists():
        raise PredictError(f"{path}: no such folder")
    raise PredictError(f"{path} is neither a run folder (no {RUN_FILE}) nor a model package (no {PACKAGE_MANIFEST})")


def verify_files(package: Path, manifest: Manifest) -> None:
    """Every file the package's manifest lists is there with its SHA-256, and every weight or graph it names is
    listed; PredictError naming the first file that is not."""
    named = {m.weights for m in manifest.members.values()} | {m.onnx for m in manifest.members.values() if m.onnx}
    unlisted = sorted(named - set(manifest.files))
    if unlisted:
        raise PredictError(f"{package / PACKAGE_MANIFEST} lists no checksum for {unlisted[0]}: the package is "
                           "incomplete; export it again")
    for name, digest in manifest.files.items():
        file = package / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise PredictError(f"{package / PACKAGE_MANIFEST} names a file outside the package: {name}")
        if not file.is_file():
            raise PredictError(f"{file} is missing from the package; export it again")
        if sha256(file) != digest:
            raise PredictError(f"{file} does not match the checksum in {PACKAGE_MANIFEST} (changed or damaged "
                               "after export); export the package again")


def _package_weights(package: Path, name: str) -> dict:
    try:
        return load_file(str(package / name))
    except (OSError, SafetensorError) as err:
        raise PredictError(f"{package / name} is not readable safetensors ({err})") from None


def _checkpoint_weights(experiment: Path, name: str, member_id: str) -> dict:
    directory = experiment / name
    try:
        return checkpoint_weights(str(directory))
    except FileNotFoundError as err:
        raise PredictError(f"the checkpoint of member {member_id} is missing: {' '.join(str(err).split())}") from None
    except Exception as err:  # a damaged checkpoint: torch and safetensors raise many types; say which file
        raise PredictError(f"the checkpoint {directory} of member {member_id} is unusable: {type(err).__name__}: "
                           f"{' '.join(str(err).split())[:200]}") from None


def _storage_path(path: Path) -> Path | None:
    storage = RunFolder.open(path).record.args.get("storage_path")
    return Path(storage) if storage else None
