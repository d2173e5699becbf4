"""Phase plans: what a family trains in which epoch, as one object the engine reads.

A family without phases trains one phase of ``train.epochs`` epochs. SeqGAN's plan is generator MLE,
then discriminator pretraining, then adversarial rounds with their own number of steps per epoch.
The engine asks the plan for the phase of an epoch and the steps in it; the family reads the phase
name from its StepContext. Like diffusers' schedulers, the plan lives beside the model, so no model
does epoch arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    steps: int = 0  # batches per epoch in this phase; 0 = one pass over the data (train.steps_per_epoch caps it)


@dataclass(frozen=True)
class Plan:
    phases: tuple = ()

    @classmethod
    def single(cls, epochs: int, name: str = "train") -> "Plan":
        return cls((Phase(name, epochs),))

    @property
    def epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def phase(self, epoch: int) -> Phase:
        """The phase of a 0-based epoch; past the plan (an explicit --epochs longer than it) the last
        phase goes on."""
        for p in self.phases:
            if epoch < p.epochs:
                return p
            epoch -= p.epochs
        return self.phases[-1] if self.phases else Phase("train", 0)

    def starts_phase(self, epoch: int) -> bool:
        """True when ``epoch`` is the first epoch of a phase whose name differs from the epoch before."""
        return epoch == 0 or self.phase(epoch).name != self.phase(epoch - 1).name

    def steps(self, epoch: int, default: int) -> int:
        return self.phase(epoch).steps or default

    def describe(self) -> str:
        return ", ".join(f"{p.name} {p.epochs} epoch(s)" + (f" x {p.steps} steps" if p.steps else "")
                         for p in self.phases)
