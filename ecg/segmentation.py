"""A recurrent model's segmentation of a record: "FxS", F samples per step and S steps (F x S = the length),
or "F" alone (S = length / F). The study's 500x10, 100x50 and 50x100 are segmentations of 5,000 samples.

The one place that writes and reads the form: the spaces draw segmentations (`spaces.common.segmentations`),
scale them to a trial's rate (`spaces.rate`) and to another record length (`spaces.warm_start`), and the
models parse them (`ecg.models.recurrent`). No torch here, so the spaces stay cheap to import.
"""
from __future__ import annotations


def format_segmentation(features: int, steps: int) -> str:
    """"FxS"."""
    return f"{features}x{steps}"


def split_segmentation(text: str) -> tuple[int, int | None]:
    """(F, S) of "FxS", (F, None) of "F"; ValueError for anything else."""
    parts = str(text).lower().replace(" ", "").split("x")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2) or min(numbers, default=0) < 1:
        raise ValueError(f"segmentation {text!r} must be 'FxS' (features x steps, e.g. '50x100') or 'F'")
    return numbers[0], (numbers[1] if len(numbers) == 2 else None)


def parse_segmentation(text: str, length: int) -> tuple[int, int]:
    """"FxS" (F features x S steps, F * S == length) or "F" (S = length / F) -> (features, steps)."""
    features, given_steps = split_segmentation(text)
    if length % features:
        raise ValueError(f"segmentation {text!r}: {features} features per step do not divide the length {length}")
    steps = length // features
    if given_steps is not None and given_steps != steps:
        raise ValueError(
            f"segmentation {text!r}: {features} x {given_steps} = {features * given_steps} is not the length {length}"
            f" (use '{features}x{steps}' or '{features}')"
        )
    return features, steps


def same_steps(text: str, from_length: int, to_length: int) -> str | None:
    """The segmentation with the same number of steps at `to_length` samples ("500x10" at 5,000 is "250x10"
    at 2,500: the same duration per step at another rate); None when the steps do not divide `to_length`."""
    _, steps = parse_segmentation(text, from_length)
    return format_segmentation(to_length // steps, steps) if to_length % steps == 0 else None
