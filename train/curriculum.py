"""Curriculum schedules as pure functions of the epoch (0-based).

The curriculum prototype trained on 50 bp first and added 50 bp every 5 epochs up to its maximum,
lowering the balance weight by 0.05 every 10 epochs to a floor of 0.1. For short seq_len the length
schedule is scaled: start and step become seq_len/10 (at least 1), so ten stages reach seq_len.
Under --budget the length follows the clock instead of the epoch count: the stages are spread evenly
over the first ``share`` (train.curriculum_share, 0.6) of the budget, so a 500 bp run reaches 500 bp
however many epochs the budget allows, and trains the rest of it at full length. An epoch that
is projected to be the last to start (the previous one's share of the budget says no further epoch
fits after it) trains at full length whatever its stage: long epochs would otherwise end a budget
below seq_len (masked at 500 bp, --budget 900, ended at 450 bp).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Curriculum:
    seq_len: int
    start: int = 0
    step: int = 0
    every: int = 5
    weight0: float = 0.0
    weight_step: float = 0.05
    weight_every: int = 10
    weight_floor: float = 0.1
    temperature0: float = 1.0
    temperature_min: float = 0.5
    temperature_decay: float = 0.97
    share: float = 0.6  # under a time budget: the full length is reached at this fraction of it

    def _start_step(self):
        if self.start and self.step:
            return self.start, self.step
        auto = 50 if self.seq_len >= 500 else max(1, round(self.seq_len / 10))
        return self.start or auto, self.step or auto

    def length(self, epoch: int, used: float | None = None, last: float = 0.0) -> int:
        """Training length at this epoch, or (``used``: the fraction of the time budget spent) at
        this point of the budget; ``last``: the fraction the previous epoch took (0: not known),
        which makes an epoch starting within two such shares of the budget's end a full-length one."""
        start, step = self._start_step()
        if used is None:
            stage = epoch // max(1, self.every)
        elif last > 0 and used + 2 * last > 1:
            return self.seq_len
        else:
            stages = -(-max(0, self.seq_len - start) // step)  # stages to reach seq_len
            stage = int(min(1.0, used / max(self.share, 1e-9)) * stages)
        return int(min(self.seq_len, start + step * stage))

    def balance_weight(self, epoch: int) -> float:
        if self.weight0 <= 0:
            return 0.0
        w = self.weight0 - self.weight_step * (epoch // max(1, self.weight_every))
        return float(max(min(self.weight_floor, self.weight0), w))

    def temperature(self, epoch: int) -> float:
        return float(max(self.temperature_min, self.temperature0 * self.temperature_decay ** epoch))


def from_config(train_cfg, seq_len: int) -> Curriculum:
    return Curriculum(
        seq_len=seq_len,
        start=train_cfg.curriculum_start,
        step=train_cfg.curriculum_step,
        every=train_cfg.curriculum_every,
        weight0=train_cfg.balance_weight,
        temperature0=train_cfg.temperature,
        temperature_min=train_cfg.temperature_min,
        temperature_decay=train_cfg.temperature_decay,
        share=train_cfg.curriculum_share,
    )
