"""Exporting a model as a self-contained package that `python -m ecg.predict DIR --data ...` applies as it
applies the run folder, with no run folder, Ray or Optuna:

    DIR/manifest.json                    the model's manifest (`ecg.predict.manifest`) with every file's SHA-256
    DIR/members/<id>.safetensors         each member's weights
    DIR/members/<id>.onnx                with --onnx: each member's graph (inputs `signals` [B, leads, length]
                                         float32 mV at the member's rate, `extra` [B, E] age/sex then the
                                         standardised features; output `logits` [B, classes])

The package is written in a temporary folder beside DIR and renamed into place at the end: a failure (an ONNX
graph that does not match PyTorch, a full disk) leaves nothing behind.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import save_file

from ecg.data.dataset import ECGDataset
from ecg.predict.load import PACKAGE_MANIFEST
from ecg.predict.manifest import Manifest, code_version, sha256
from ecg.predict.model import ChosenModel, PredictError

MEMBERS = "members"


def check_target(out: Path) -> None:
    """Refuse (PredictError, one line) a target that exists and is not an empty folder: an export never
    overwrites anything."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PredictError(f"{out} already exists; export into a new folder")
    if not out.absolute().parent.is_dir():
        raise PredictError(f"{out}: no such folder {out.parent}")


def export_package(model: ChosenModel, out: Path, *, onnx_records: ECGDataset | None = None,
                   onnx: bool = False) -> Manifest:
    """Write `model` (all of its threshold rules, `model.rule` chosen) as a package in `out` (see the module
    docstring); with `onnx`, also each member's ONNX graph, checked against PyTorch on `onnx_records` (records
    read at the run's rate: its test split) within `ecg.predict.onnx.TOLERANCE`. Returns the package's manifest."""
    out = Path(out)
    check_target(out)
    if onnx and onnx_records is None:
        raise PredictError("--onnx needs records to check the graphs on (the run's test split)")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest = _write(model, staging, onnx_records if onnx else None)
        _readable(staging)
        if out.exists():
            out.rmdir()  # the empty folder check_target allowed
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _write(model: ChosenModel, folder: Path, onnx_records: ECGDataset | None) -> Manifest:
    source = model.manifest
    (folder / MEMBERS).mkdir()
    members = {}
    parity = _onnx_inputs(model, onnx_records) if onnx_records is not None else None
    for index, member in enumerate(model.members):
        stem = f"{MEMBERS}/{_file_stem(member.spec.id)}"
        weights = {k: v.detach().cpu().contiguous().clone() for k, v in member.module.state_dict().items()}
        save_file(weights, str(folder / f"{stem}.safetensors"))
        spec = dataclasses.replace(member.spec, weights=f"{stem}.safetensors", params=member.params,
                                   onnx=None, onnx_max_abs_diff=None)
        if parity is not None:
            from ecg.predict.onnx import export_member

            spec.onnx = f"{stem}.onnx"
            spec.onnx_max_abs_diff = export_member(member, folder / spec.onnx, parity[index])
        members[member.spec.id] = spec
    models = {model.name: dataclasses.replace(model.spec, rule=model.rule)}
    manifest = dataclasses.replace(
        source, kind="package", chosen=model.name, members=members, models=models,
        feature_scaling=source.feature_scaling if model.needs_features else None,
        code={**source.code, "exported_with": code_version()}, files={})
    manifest.files = {path.relative_to(folder).as_posix(): sha256(path)
                      for path in sorted((folder / MEMBERS).iterdir())}
    manifest.write(folder / PACKAGE_MANIFEST)
    return manifest


def _readable(folder: Path) -> None:
    """Ordinary permissions (the umask's), where mkdtemp and safetensors make files only their owner reads."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)
    for path in folder.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def _onnx_inputs(model: ChosenModel, records: ECGDataset) -> list[ECGDataset]:
    """The parity records at each member's rate, prepared as prediction prepares them."""
    from ecg.data.rates import resample_dataset

    prepared = model.prepare(records)
    return [resample_dataset(prepared, member.spec.fs) for member in model.members]


def _file_stem(member_id: str) -> str:
    """A member id as a file name (trial ids are hex; a retrained model's is its family)."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in member_id).strip(".")
    return stem or "member"

