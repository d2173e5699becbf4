"""Phase plans: what a family trains in which epoch, as one object the engine reads.

A family without phases trains one phase of ``train.epochs`` epochs. SeqGAN's plan is generator MLE,
then discriminator pretraining, then adversarial rounds with their own number of steps per epoch.
The engine walks the plan with a Cursor and the family reads the phase name from its StepContext.
Like diffusers' schedulers, the plan lives beside the model, so no model does epoch arithmetic.

Under ``--budget`` each phase also has a share of the time: a phase ends when its epochs are done
or when the cumulative share of the budget up to it is spent (after its first epoch: every phase
runs at least one), whichever comes first, so every phase
gets its turn inside the budget; the last phase runs on until the budget ends.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    steps: int = 0  # batches per epoch in this phase; 0 = one pass over the data (train.steps_per_epoch caps it)
    share: float = 0.0  # under --budget: its fraction of the training time (0: whatever the others leave)


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

    def describe(self, budget: float = 0.0) -> str:
        def one(p):
            out = f"{p.name} {p.epochs} epoch(s)" + (f" x {p.steps} steps" if p.steps else "")
            return out + (f" or {p.share * budget:.0f} s" if budget and p.share else "")

        return ", ".join(one(p) for p in self.phases)


class Cursor:
    """Where a run stands in its plan: the phase and the epochs done in it (saved in checkpoints)."""

    def __init__(self, plan: Plan, index: int = 0, epochs_in_phase: int = 0):
        self.plan, self.index, self.epochs_in_phase = plan, index, epochs_in_phase

    @property
    def phase(self) -> Phase:
        return self.plan.phases[self.index] if self.plan.phases else Phase("train", 0)

    def start_epoch(self, budget_used: float | None = None) -> bool:
        """Move past finished phases before an epoch; returns whether the epoch starts a phase (the
        first epoch of a phase whose name differs from the one before). budget_used: the fraction
        of --budget spent (None without a budget)."""
        while self.index < len(self.plan.phases) - 1:
            p = self.plan.phases[self.index]
            cum = sum(q.share for q in self.plan.phases[: self.index + 1])
            # a phase gets at least one epoch, even when the phases before it overran its share (a
            # skipped D pretraining left seqgan's adversarial rounds an untrained discriminator)
            out_of_time = budget_used is not None and p.share > 0 and budget_used >= cum and self.epochs_in_phase > 0
            if self.epochs_in_phase < p.epochs and not out_of_time:
                break
            self.index, self.epochs_in_phase = self.index + 1, 0
        prev = self.plan.phases[self.index - 1].name if self.index else None
        return self.epochs_in_phase == 0 and prev != self.phase.name

    def end_epoch(self) -> None:
        self.epochs_in_phase += 1

    def state(self) -> list:
        return [self.index, self.epochs_in_phase]
