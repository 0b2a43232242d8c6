"""What a space needs to know about the run: the hardware (CPU spaces are smaller), the signal length
(segmentations are its factorisations), the epoch budget (the step schedule's milestones) and the selection
metric, which every trial's training settings carry so that a retrained winner selects its epoch the same way."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpaceContext:
    gpu: bool = False
    length: int = 5000
    max_epochs: int = 30
    seed: int = 0
    metric: str = "val_micro_f1"

    def sizes(self, cpu: list, gpu: list) -> list:
        """The choices for this hardware: the CPU list without a GPU, the study's list with one."""
        return list(gpu if self.gpu else cpu)
