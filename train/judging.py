"""The judge in the per-epoch monitor (issue 14, Must 1: the C2ST "in the per-epoch monitor where
affordable").

An epoch's monitoring sample is judged by the C2ST of analysis.judge (one judge, its bootstrap
interval) against the windows every 10 bases of the held-out blocks that pick best.pt (the selection
half under data.select_apart: the judged half is never read while training), beside the floor of the
same judge on real training windows at the epoch's length. Affordable means a share of the run's
time: an epoch is judged when the judging so far, with this one's cost as last measured, stays
within ``train.monitor_c2st`` (0.05: 5%) of the seconds the run has taken; so a run of short epochs
is judged every few epochs, and a run of a few seconds (a test's) not at all. Under --budget an epoch
is not judged when its judge would not end inside what is left of the budget. The judge's time is
the run's (it counts against --budget), but not the epoch's tail that the budget keeps back for the
last epoch, since the judge may skip that one.

The judge runs on the run's device (a GPU's judge: the same weights and batches as the CPU's, its
arithmetic rounded differently) and draws only from the CPU's generators, under
torch.random.fork_rng, so a seeded run trains the same networks with it on or off (only what
--budget leaves for training differs); it never reseeds the CUDA generators a run on a GPU draws
from.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from analysis.judge import c2st, selection_reference, versus_floor
from utils.errors import ConfigError

log = logging.getLogger("dnagan")

# seconds per sequence-base a side before the first judge is timed (2 cores: 500 x 70 bp in ~1 s);
# afterwards the judge's own measured rate is used
PRIOR_S_PER_BASE = 3e-5
MIN_N = 100  # sequences a side below which the monitor does not judge (its interval is wider than the range)


class EpochJudge:
    """Judges monitoring samples when affordable; ``row(sample, length, epoch, elapsed, left)``
    returns the figures for the epoch's metrics row (empty when not judged)."""

    def __init__(self, share: float, reference: np.ndarray, groups, train: np.ndarray, seed: int, device=None):
        self.share, self.reference, self.groups, self.train, self.seed = share, reference, groups, train, seed
        self.device = device
        self.spent = 0.0  # seconds judged so far in this process
        self.rate = PRIOR_S_PER_BASE
        self.floors: dict[tuple[int, int], dict] = {}  # (length, n) -> the floor's c2st

    @classmethod
    def build(cls, share: float, data, kind: str, seed: int, device=None) -> "EpochJudge | None":
        """None when off (share 0), for real values, or with no held-out blocks to judge against."""
        if not 0 <= share < 1:
            raise ConfigError(f"train.monitor_c2st is a share of the run's time in [0, 1), got {share}")
        if share == 0 or kind != "dna":
            return None
        reference, groups, what = selection_reference(data)
        if reference is None:
            log.info("per-epoch C2ST off: nothing is held out to judge the monitoring sample against")
            return None
        log.info("per-epoch C2ST: the monitoring sample against %d %s, beside real training windows' floor, "
                 "in epochs where the judge (on %s) keeps within %.0f%% of the run's time (train.monitor_c2st)",
                 reference.shape[0], what, device or "cpu", 100 * share)
        return cls(share, reference, groups, data.train, seed, device)

    def cost(self, n: int, length: int) -> float:
        """Seconds this epoch's judging would take: the sample's judge, and the floor's at a new length."""
        judges = 1 if (length, n) in self.floors else 2
        return judges * self.rate * n * length

    def due(self, n: int, length: int, elapsed: float, left: float) -> bool:
        if n < MIN_N or n > self.reference.shape[0] or n > self.train.shape[0]:
            return False
        cost = self.cost(n, length)
        return self.spent + cost <= self.share * elapsed and cost <= left

    def row(self, sample: np.ndarray, length: int, epoch: int, elapsed: float, left: float = float("inf")) -> dict:
        n = int(sample.shape[0])
        if not self.due(n, length, elapsed, left):
            return {}
        t = time.time()
        ref = self.reference[:, :length]
        key = (length, n)
        judged = 1
        if key not in self.floors:  # the same judge on real training windows: what the set is read against
            self.floors[key] = c2st(ref, self.train[:, :length], seed=self.seed, max_n=n, repeats=1,
                                    real_groups=self.groups, device=self.device)
            judged = 2
        r = c2st(ref, sample, seed=self.seed + epoch + 1, max_n=n, repeats=1, real_groups=self.groups, device=self.device)
        seconds = time.time() - t
        self.spent += seconds
        self.rate = seconds / (judged * n * length)
        floor = self.floors[key]
        reading = versus_floor({"c2st_lo": r["lo"], "c2st_hi": r["hi"]}, {"c2st_lo": floor["lo"], "c2st_hi": floor["hi"]})
        return {"val_c2st": r["auc"], "val_c2st_lo": r["lo"], "val_c2st_hi": r["hi"], "val_c2st_n": r["n"],
                "c2st_floor": floor["auc"], "c2st_floor_lo": floor["lo"], "c2st_floor_hi": floor["hi"],
                "c2st_vs_floor": reading, "judge_s": seconds}


def describe(row: dict) -> str:
    """The log's words for an epoch's judge ('' when it was not judged)."""
    if "val_c2st" not in row:
        return ""
    return (f" C2ST={row['val_c2st']:.3f} [{row['val_c2st_lo']:.3f}, {row['val_c2st_hi']:.3f}] {row['c2st_vs_floor']}"
            f" ({row['c2st_floor']:.3f} [{row['c2st_floor_lo']:.3f}, {row['c2st_floor_hi']:.3f}], {row['val_c2st_n']} a side)")


def judged_rows(history: list[dict]) -> list[dict]:
    """The metrics rows of the epochs the judge judged (a row read back from metrics.csv has '' where not)."""
    return [r for r in history if r.get("val_c2st") not in (None, "")]


def summary(history: list[dict]) -> str:
    """The last judged figure for --mode train's last line ('' when no epoch was judged)."""
    judged = judged_rows(history)
    if not judged:
        return ""
    r = judged[-1]
    return (f", C2ST {r['val_c2st']:.3f} [{r['val_c2st_lo']:.3f}, {r['val_c2st_hi']:.3f}] at epoch {r['epoch']},"
            f" {r['c2st_vs_floor']} ({r['c2st_floor']:.3f} [{r['c2st_floor_lo']:.3f}, {r['c2st_floor_hi']:.3f}])")
