"""Weight averaging: the exponential moving average of a network's weights (Polyak averaging).

With ``train.ema`` > 0 the engine keeps, beside every member's training weights, an averaged copy
built on torch.optim.swa_utils.AveragedModel: updated after every step, it is the copy that is
validated, picks the best checkpoint, is saved as the checkpoint's weights and generates. The
training weights go on in the checkpoint too (``train_members``), so --resume continues exactly.

Why: Adam at a learning rate that still learns moves the output's calibration from step to step.
A masked model stopped by --budget at an epoch's lr of 7.6e-4 generated S. suis windows with G at
0.216 of bases against 0.202 in its data (docs/benchmarks.md); the average of the last few hundred
steps' weights does not carry that step-to-step noise. Diffusion models (and DNA-Diffusion among
them) deliver such an average for the same reason.

The decay ramps up as min(ema, (1 + t) / (10 + t)) after t updates (TensorFlow's
ExponentialMovingAverage with num_updates), so the random initial weights are soon forgotten: it
averages over about the last tenth of the steps until 1 / (1 - ema) steps, then over the last
1 / (1 - ema). Buffers (counts, refit tables: computed, not trained) are copied, not averaged.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def ema_decay(decay: float, updates: int) -> float:
    """The decay of the update after ``updates`` earlier ones: ramped, at most ``decay``."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class WeightAverage:
    """An exponential moving average of ``net``'s parameters; ``module`` is the averaged copy."""

    def __init__(self, net: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0  # counted here too: reading n_averaged on a GPU would wait for the device

        def multi_avg_fn(averaged, current, n):  # called from the second update on (the first copies)
            torch._foreach_lerp_(averaged, current, 1.0 - ema_decay(decay, self.updates - 1))

        self.model = AveragedModel(net, multi_avg_fn=multi_avg_fn, use_buffers=False)
        self.model.requires_grad_(False)
        self.model.eval()

    @property
    def module(self) -> nn.Module:
        return self.model.module

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        """One step's average (the first call copies the weights); buffers are copied."""
        self.model.update_parameters(net)
        self.updates += 1

    @torch.no_grad()
    def copy_buffers(self, net: nn.Module) -> None:
        for mine, theirs in zip(self.module.buffers(), net.buffers()):
            mine.copy_(theirs)

    def load(self, state: dict, updates: int) -> None:
        """The averaged weights of a checkpoint (strict) and how many updates they hold."""
        self.module.load_state_dict(state)
        self.model.n_averaged.fill_(int(updates))
        self.updates = int(updates)
