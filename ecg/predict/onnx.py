"""One member as an ONNX graph (`torch.onnx.export`, the dynamo exporter), checked against PyTorch with ONNX
Runtime. Needs the optional `export` extra: `pip install -e ".[export]"` (onnx, onnxscript, onnxruntime).

The graph's inputs are what the member's network takes: `signals` [B, leads, length] float32 millivolts at
the member's rate, and `extra` [B, E]: the four age/sex columns (`ecg.data.dataset.age_sex_features`), then,
for a member that uses the hand-made features, the features standardised with the run's training statistics
(`ecg.features.layout` names the columns). Its output is `logits` [B, classes]; probabilities are their sigmoid.
A network that reads neither age/sex nor features still has the `extra` input (four columns), unused; the graph
is fed only the inputs it declares.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from ecg.data.dataset import AGE_SEX_DIM, ECGDataset
from ecg.features.layout import input_width
from ecg.predict.model import Member, PredictError

TOLERANCE = 1e-4  # the largest probability difference allowed between the graph and PyTorch


def extra_width(member: Member) -> int:
    """Columns of `extra` the member's graph takes."""
    return input_width(member.n_leads) if member.spec.uses_features else AGE_SEX_DIM


def graph_inputs(member: Member, records: ECGDataset) -> dict[str, np.ndarray]:
    """`signals` and `extra` of `records` (at the member's rate, prepared) as the graph takes them."""
    signals = (records.signals.astype(np.float32) / np.float32(records.units_per_mv)).astype(np.float32)
    return {"signals": signals, "extra": records.extra_inputs()[:, :extra_width(member)].astype(np.float32)}


def _runtime():
    try:
        import onnxruntime
    except ImportError:
        raise PredictError("--onnx needs the optional export packages: pip install -e \".[export]\"") from None
    return onnxruntime


def export_member(member: Member, path: Path, records: ECGDataset) -> float:
    """Write `member`'s graph to `path` and return the largest difference between its probabilities and
    PyTorch's on `records` (at the member's rate, prepared); PredictError, one line, when it exceeds
    `TOLERANCE` or the network cannot be exported."""
    onnxruntime = _runtime()
    inputs = graph_inputs(member, records.subset(np.arange(min(len(records), 2))))
    example = tuple(torch.from_numpy(inputs[name]) for name in ("signals", "extra"))
    batch = torch.export.Dim("batch", min=1)
    module = member.module.cpu().float().eval()
    try:
        with _quiet():
            program = torch.onnx.export(module, example, dynamo=True, input_names=["signals", "extra"],
                                        output_names=["logits"], dynamic_shapes=({0: batch}, {0: batch}))
            program.save(str(path))
    except Exception as err:  # the exporter raises many types; one line naming the member is what helps
        raise PredictError(f"member {member.spec.id} ({member.spec.config.get('family')}) cannot be exported to "
                           f"ONNX: {type(err).__name__}: {' '.join(str(err).split())[:200]}") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = graph_inputs(member, records)
    names = [i.name for i in session.get_inputs()]
    logits = session.run(["logits"], {name: feed[name] for name in names})[0]
    onnx_probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    torch_probs = member.predict(records, device="cpu").astype(np.float64)
    difference = float(np.abs(onnx_probs - torch_probs).max())
    if not difference <= TOLERANCE:
        raise PredictError(f"member {member.spec.id}'s ONNX graph differs from PyTorch by {difference:.3g} on the "
                           f"run's test records (more than {TOLERANCE:g}); the package was not written")
    return difference


@contextlib.contextmanager
def _quiet():
    """The exporter's progress lines and warnings (torchvision absent, deprecations) are not the user's
    business: a failure is reported in one line instead."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
