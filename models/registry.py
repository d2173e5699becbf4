"""The family registry and the interface every family implements.

`--model NAME` picks a class registered here; the engine never asks which. Families are imported
explicitly in `models/__init__.py` (no dotted-path strings to missing modules).

A family is `build`, `optimizers`, `train_step` and `sample`, plus optional hooks that any family
may use: `plan` (its phases), `on_epoch_start`, `evaluate` (held-out figures per epoch),
`closing_fit` (a fit after the last epoch, part of every delivered checkpoint) and `artifacts`
(family-specific output files). Capabilities are attributes: `data_kinds`, `conditional`.
Its command-line flags are declared on its Config's fields (utils.config.option).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

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
    kind: str = "dna"  # dna | signal (real-valued sequences; families whose data_kinds include it)
    label_names: tuple = ()  # the training records' labels (utils.labels); () without labels
    label_freq: tuple = ()  # each label's share of the training windows
    label_gc_percentiles: tuple = ()  # per label, GC percentiles 0..100 of its training windows


@dataclass(frozen=True)
class ClosingFit:
    """A fit after the last epoch (e.g. a convex refit of part of the model with the rest frozen).

    windows: training windows ``fit`` reads (the engine keeps time for it under --budget);
    fit(nets, train_x, train_labels, ctx) -> figures (train_labels None without labels) for the log; undo(nets) restores the trained state, so a
    resumed or fine-tuned run continues from it exactly; price: see below."""

    windows: int
    fit: Callable
    undo: Callable
    # price(nets, x, labels, ctx) -> (rows per window, solver seconds per row, seconds per window of
    # the fit's own frozen pass): what the fit costs, measured on the few windows x (None: nothing)
    price: Callable | None = None


class Family:
    name = "base"
    Config = None  # frozen dataclass with the family's model options (and flags)
    data_kinds = ("dna",)  # sequence kinds it models: "dna", "signal" (real-valued)
    conditional = False  # sample() accepts gc= (a requested GC content) when trained with labels
    # names of buffers (in any submodule) that each rank fills from its own windows and that are
    # summed over the ranks after every epoch under torchrun (counts; gradients are averaged per step)
    summed_buffers: tuple = ()
    # trains on labels when the data have them (ctx.batch_labels) and samples with label= (an index
    # into stats.label_names); a family without it ignores labels
    labelled = False
    # train.label_balance reshapes its passes (gradient training); False where every window must be
    # seen once (counting)
    balances_labels = True
    # sample() takes guidance= (classifier-free guidance; models.condition)
    guided = False
    # the plan phase in which the generator takes adversarial steps (seqgan's); None: a GAN config's
    # warm-up decides (train.gan.adversarial_now)
    adversarial_phase: str | None = None
    # the metrics-row figure (lower is better) that picks <model>_best.pt: held-out NLL where the
    # family has a likelihood (from evaluate), else the monitor's sample score
    select_by = "val_score"

    def build(self, cfg, stats: DataStats) -> nn.ModuleDict:
        raise NotImplementedError

    def optimizers(self, nets: nn.ModuleDict, cfg) -> dict[str, tuple[list, float]]:
        """Optimiser groups: name -> (parameters, learning rate). train_step steps them by name."""
        return {}

    def train_step(self, nets: nn.ModuleDict, batch: torch.Tensor, ctx) -> dict[str, float]:
        raise NotImplementedError

    def sample(self, nets, n: int, length: int, *, temperature: float = 1.0,
               generator: torch.Generator | None = None, prompt: torch.Tensor | None = None,
               **condition) -> torch.Tensor:
        """(n, length) codes 0-3 (or values); a prompt fixes the first bases. Conditional families
        also take ``gc=``."""
        raise NotImplementedError

    # ---- optional hooks
    def plan(self, cfg):
        """Phases of training (train.schedule.Plan); default one phase of train.epochs epochs."""
        from train.schedule import Plan

        return Plan.single(cfg.train.epochs)

    def on_epoch_start(self, nets: nn.ModuleDict, ctx) -> None:
        """Before a member's epoch (ctx.phase, ctx.phase_start say where the plan stands)."""

    def evaluate(self, nets: nn.ModuleDict, ctx) -> dict[str, float]:
        """Per-epoch held-out figures (ctx.val), e.g. NLL or masked accuracy, and "val_passes": the
        windows it passed through the network (with its time, the engine's measure of a forward
        pass, which prices the closing fit)."""
        return {}

    def closing_fit(self, cfg) -> ClosingFit | None:
        return None

    def fit_to_data(self, cfg, n_bases: int):
        """(the run's config, a note for the log or None) for ``n_bases`` training bases, decided
        once before the networks are built; the checkpoint stores the result, so loading builds the
        same networks. Default: a model config's ``for_data(n_bases)`` if it has one."""
        adapt = getattr(cfg.model, "for_data", None)
        if adapt is None:
            return cfg, None
        model, note = adapt(n_bases)
        return (cfg if model == cfg.model else dataclasses.replace(cfg, model=model)), note

    def artifacts(self, ensemble, run_dir, sample, epoch: int | None) -> list:
        """Family-specific files in a saved run, after each epoch's monitoring sample (epoch, 1-based)
        and once at the end (epoch None); returns the paths written."""
        return []
