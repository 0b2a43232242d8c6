"""Choosing leads by name (case-insensitively), deriving the limb leads a source lacks from I and II.

Hefei round-2 files hold I, II, V1-V6; the other four limb leads are exact combinations of I and II
(Einthoven: III = II - I; Goldberger: aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2), so asking for all
12 leads works on them. Any other missing lead is an error naming the record and the lead.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ecg.data.errors import DataError
from ecg.values import clip, quote

# lead -> (weight of I, weight of II)
DERIVED_FROM_I_II: dict[str, tuple[float, float]] = {
    "iii": (-1.0, 1.0),
    "avr": (-0.5, -0.5),
    "avl": (1.0, -0.5),
    "avf": (-0.5, 1.0),
}


@dataclass(frozen=True)
class LeadPlan:
    """`weights [len(leads), n_available]`: the requested leads are `weights @ signal[available]`."""

    weights: np.ndarray

    @property
    def sources(self) -> list[int]:
        """Indices of the available leads the plan reads."""
        return [int(i) for i in np.flatnonzero(np.any(self.weights != 0, axis=0))]

    @property
    def direct(self) -> list[int] | None:
        """The source index of each lead when every lead is read as it is (nothing derived), else None."""
        if not (np.isin(self.weights, (0.0, 1.0)).all() and (self.weights.sum(axis=1) == 1).all()):
            return None
        return [int(i) for i in self.weights.argmax(axis=1)]

    def apply(self, signal: np.ndarray) -> np.ndarray:
        """float64 `[len(leads), T]` from `signal [n_available, T]` (rows outside `sources` are ignored)."""
        out = np.zeros((len(self.weights), signal.shape[-1]))
        for row, weights in enumerate(self.weights):
            for source in np.flatnonzero(weights):
                out[row] += weights[source] * signal[source]
        return out


def plan_leads(available: Sequence[str], leads: Sequence[str], where: str, record: str | None = None) -> LeadPlan:
    """How to build `leads` from the `available` ones; an error naming `where`, the record and the lead."""
    lower = [name.strip().lower() for name in available]
    weights = np.zeros((len(leads), len(available)))
    for row, lead in enumerate(leads):
        key = lead.lower()
        if key in lower:
            weights[row, lower.index(key)] = 1.0
        elif key in DERIVED_FROM_I_II and "i" in lower and "ii" in lower:
            w_i, w_ii = DERIVED_FROM_I_II[key]
            weights[row, lower.index("i")] = w_i
            weights[row, lower.index("ii")] = w_ii
        else:
            whose = f"record {record} has" if record is not None else "has"
            raise DataError(f"{where}: {whose} no lead {quote(lead)} (leads: {clip(' '.join(available))})")
    return LeadPlan(weights)
