"""The one place numeric settings are checked: every numeric flag and config field has a domain.

A Domain is both an argparse ``type=`` (a flag's text is parsed and checked at parse time, so a bad
value is one line and exit 2 before anything is read or written) and a check on config values
(YAML files, ``--set``, checkpoints' stored configs), so the same rule holds however a value arrives.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from utils.errors import ConfigError


@dataclass(frozen=True)
class Domain:
    text: str  # what a value must be, as the error message says it ("a positive integer")
    kind: type  # int or float
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself excluded
    hi_open: bool = False

    def ok(self, v) -> bool:
        if self.kind is int and not (isinstance(v, int) and not isinstance(v, bool)):
            return False
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            return False
        return not (self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)))

    def check(self, value, where: str):
        """The value if it lies in the domain, else ConfigError naming ``where``."""
        if value is None or self.ok(value):
            return value
        raise ConfigError(f"{where} must be {self.text}, got {value!r}")

    def __call__(self, text: str):
        """argparse type: parse and check a flag's text."""
        try:
            v = self.kind(text) if self.kind is float else int(text, 10)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {self.text}, got {text!r}") from None
        if not self.ok(v):
            raise argparse.ArgumentTypeError(f"expected {self.text}, got {text!r}")
        return v

    @property
    def __name__(self) -> str:  # argparse names the type in some messages
        return self.text


POSITIVE_INT = Domain("a positive integer", int, lo=1)
COUNT = Domain("a non-negative integer", int, lo=0)
SEED = Domain("an integer from 0 to 2**32 - 1", int, lo=0, hi=2**32 - 1)
PROBABILITY = Domain("a number from 0 to 1", float, lo=0.0, hi=1.0)
FRACTION = Domain("a number from 0 up to (not including) 1", float, lo=0.0, hi=1.0, hi_open=True)
RATE = Domain("a number above 0 and at most 1", float, lo=0.0, hi=1.0, lo_open=True)
POSITIVE = Domain("a finite number above 0", float, lo=0.0, lo_open=True)
NONNEG = Domain("a finite number of at least 0", float, lo=0.0)
FINITE = Domain("a finite number", float)

# Domains of the shared config sections (section.field). Fields not named here take their type's
# default domain (DEFAULT_BY_TYPE): non-negative integers and non-negative finite numbers.
FIELDS = {
    "data.seq_len": POSITIVE_INT, "data.stride": COUNT, "data.val_fraction": FRACTION,
    "data.block_size": POSITIVE_INT, "data.max_sequences": COUNT, "data.synthetic": COUNT,
    "train.epochs": COUNT, "train.batch": POSITIVE_INT, "train.lr_g": NONNEG, "train.lr_d": NONNEG,  # 0 freezes a group
    "train.weight_decay": NONNEG, "train.lr_gamma": RATE, "train.clip_norm": NONNEG, "train.ema": FRACTION, "train.seed": SEED,
    "train.steps_per_epoch": COUNT, "train.save_every": COUNT, "train.sample_every": COUNT,
    "train.eval_samples": POSITIVE_INT, "train.eval_bases": POSITIVE_INT, "train.patience": POSITIVE_INT, "train.n_models": POSITIVE_INT,
    "train.target_gc": PROBABILITY, "train.balance_weight": PROBABILITY, "train.target_gc_weight": PROBABILITY,
    "train.curriculum_start": COUNT, "train.curriculum_step": COUNT, "train.curriculum_every": POSITIVE_INT,
    "train.curriculum_share": PROBABILITY,
    "train.temperature": POSITIVE, "train.temperature_min": POSITIVE, "train.temperature_decay": RATE,
    "train.time_budget": NONNEG, "train.sync_every": POSITIVE_INT,
    "gen.n": POSITIVE_INT, "gen.temperature": POSITIVE, "gen.seq_len": COUNT,
}
DEFAULT_BY_TYPE = {int: COUNT, float: NONNEG}


def of(section: str, name: str, typ=None, declared: Domain | None = None) -> Domain | None:
    """A field's domain: declared on the field (utils.config.option(domain=...)), else FIELDS, else
    its type's default; None for non-numeric fields."""
    return declared or FIELDS.get(f"{section}.{name}") or DEFAULT_BY_TYPE.get(typ)
