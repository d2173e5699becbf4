"""Curriculum schedules as pure functions of the epoch (0-based).

The curriculum prototype trained on 50 bp first and added 50 bp every 5 epochs up to its maximum,
lowering the balance weight by 0.05 every 10 epochs to a floor of 0.1. For short seq_len the length
schedule is scaled: start and step become seq_len/10 (at least 1), so ten stages reach seq_len.
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

    def _start_step(self):
        if self.start and self.step:
            return self.start, self.step
        auto = 50 if self.seq_len >= 500 else max(1, round(self.seq_len / 10))
        return self.start or auto, self.step or auto

    def length(self, epoch: int) -> int:
        start, step = self._start_step()
        return int(min(self.seq_len, start + step * (epoch // max(1, self.every))))

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
    )
