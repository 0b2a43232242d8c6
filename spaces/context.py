"""What a space needs to know about the run: the hardware (CPU spaces are smaller), the records' rate and
length (the input rates it may sample are at most that rate; segmentations are factorisations of the length at
every one of them), the epoch budget (the step schedule's milestones) and the selection metric, which every
trial's training settings carry so that a retrained winner selects its epoch the same way."""
from __future__ import annotations

from dataclasses import dataclass

# The input rates (Hz) a space samples as `data/fs`: PTB-XL's benchmark trains at 100 Hz, the study at 500 Hz.
# A CPU search leaves 500 Hz out (the costliest, and no better than 100 Hz in most published comparisons).
CPU_RATES = (100, 250)
GPU_RATES = (100, 250, 500)


@dataclass(frozen=True)
class SpaceContext:
    gpu: bool = False
    length: int = 5000
    max_epochs: int = 30
    seed: int = 0
    metric: str = "val_micro_f1"
    fs: int = 500  # the rate the records were loaded at: every sample count the space draws is at this rate

    def sizes(self, cpu: list, gpu: list) -> list:
        """The choices for this hardware: the CPU list without a GPU, the study's list with one."""
        return list(gpu if self.gpu else cpu)

    @property
    def rates(self) -> list[int]:
        """The `data/fs` choices: this hardware's rates that are not above the records' rate and give a whole
        number of samples per record; the records' own rate when none does (data loaded below 100 Hz)."""
        found = [r for r in self.sizes(cpu=list(CPU_RATES), gpu=list(GPU_RATES))
                 if r <= self.fs and (self.length * r) % self.fs == 0]
        return found or [self.fs]

    def length_at(self, fs: int) -> int:
        """Samples per record at `fs` (the same duration as `length` at the records' rate)."""
        return self.length * fs // self.fs

    @property
    def lengths(self) -> list[int]:
        """Samples per record at every rate of `rates`."""
        return [self.length_at(r) for r in self.rates]
