"""The family registry: `--model NAME` picks a class registered here; the engine never asks which.

Families are imported explicitly in `models/__init__.py` (no dotted-path strings to missing modules).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from utils.errors import ConfigError

FAMILIES: dict[str, type] = {}


def register(name: str):
    def deco(cls):
        if name in FAMILIES:
            raise RuntimeError(f"family {name!r} registered twice")
        cls.name = name
        FAMILIES[name] = cls
        return cls

    return deco


def get_family(name: str) -> "Family":
    import models  # noqa: F401  (registers every family)

    if name not in FAMILIES:
        raise ConfigError(f"unknown model family {name!r} (known: {', '.join(sorted(FAMILIES))})")
    return FAMILIES[name]()


@dataclass(frozen=True)
class DataStats:
    """What a family may know about its training data when it is built."""

    seq_len: int
    base_freq: tuple  # (4,) A, C, G, T frequencies of the training windows
    gc: float
    # per-window GC percentiles 0, 1, ..., 100 of the training windows (conditional families bin on them)
    gc_percentiles: tuple = ()
    kind: str = "dna"  # dna | signal (real-valued sequences; families with continuous = True)


class Family:
    """Interface every family implements. Defaults cover families without optimisers or hooks."""

    name = "base"
    Config = None  # frozen dataclass with the family's model options
    autoregressive = False  # True: sample() accepts a prompt to extend
    conditional = False  # True: sample() accepts gc= (a requested GC content) when trained with labels
    continuous = False  # True: also trains on real-valued sequences (DataStats.kind == "signal")

    def build(self, cfg, stats: DataStats) -> nn.ModuleDict:
        raise NotImplementedError

    def param_groups(self, nets: nn.ModuleDict) -> dict[str, list]:
        """Parameter groups by optimiser name ('g' uses train.lr_g, 'd' uses train.lr_d, any other
        name group_lr's rate)."""
        return {}

    def group_lr(self, cfg, name: str) -> float | None:
        """Learning rate of a family-specific optimiser group (None: train.lr_g)."""
        return None

    def on_epoch_start(self, nets: nn.ModuleDict, ctx) -> None:
        pass

    def planned_epochs(self, cfg) -> int:
        """Epochs a family's own phase plan asks for when train.epochs is 0 (0: no plan)."""
        return 0

    def epoch_steps(self, cfg, epoch: int, default: int) -> int:
        """Steps (batches) in this epoch; families with phases of different step costs override."""
        return default

    def on_epoch_end(self, nets: nn.ModuleDict, ctx, run_dir, sample) -> None:
        """After the epoch's monitoring sample (run_dir is None when the run is not saved)."""

    def finish_windows(self, cfg) -> int:
        """Training windows ``finish`` will read; the engine stops training early enough (at the
        last epoch's throughput) to fit it in train.time_budget. 0: no finishing step."""
        return 0

    def finish(self, nets: nn.ModuleDict, train_x: torch.Tensor, ctx) -> dict[str, float]:
        """A closing fit after the last epoch, before the final checkpoints are written (train_x:
        this member's training windows). Returns figures for the log and the last metrics row."""
        return {}

    def unfinish(self, nets: nn.ModuleDict) -> None:
        """Undo ``finish`` when a run resumes, so training continues from the trained state."""

    def on_train_end(self, ensemble, run_dir) -> list:
        """After training (saved runs only): write family-specific outputs; returns their paths."""
        return []

    def train_step(self, nets: nn.ModuleDict, batch: torch.Tensor, ctx) -> dict[str, float]:
        raise NotImplementedError

    def epoch_metrics(self, nets: nn.ModuleDict, ctx) -> dict[str, float]:
        """Extra per-epoch monitoring values (e.g. discriminator accuracy on held-out batches)."""
        return {}

    def sample(self, nets, n: int, length: int, *, temperature: float = 1.0,
               generator: torch.Generator | None = None, prompt: torch.Tensor | None = None
               ) -> torch.Tensor:
        """(n, length) long codes 0-3. Conditional families also take ``gc=`` (a requested GC)."""
        raise NotImplementedError

    @staticmethod
    def generator_update(ctx, loss_g: torch.Tensor, probs: torch.Tensor | None, mle_weight: float,
                         out: dict) -> dict:
        """Shared end of a GAN generator step: without an MLE term the GC-balanced penalty applies
        to the generator's output distribution probs (B, L, 4), (1 - w) loss + w penalty; then one
        optimiser step on group 'g' if anything carries gradient. Records g_loss in out."""
        from train.losses import balance_penalty

        if probs is not None and ctx.balance_weight > 0 and mle_weight == 0:
            pen = balance_penalty(probs, ctx.target_gc, ctx.ref_freq)
            loss_g = (1 - ctx.balance_weight) * loss_g + ctx.balance_weight * pen
        if loss_g.requires_grad:
            ctx.optimize("g", loss_g)
        out["g_loss"] = float(loss_g.detach())
        return out

    def infill(self, nets, codes: torch.Tensor, gaps: torch.Tensor, *, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Fill the gap positions (1-D bool) of one sequence (1-D codes); known bases unchanged."""
        raise ConfigError(f"--infill: the {self.name!r} family does not fill gaps (use --model masked)")
