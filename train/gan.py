"""What every GAN family shares: its options, the adversarial timing, the discriminator step and
the end of the generator step. A GAN variant is an option here, not a copied loop.

Timing, for every family: the discriminator trains on every ``adv_every``-th step counted from
step 0 (so its accuracy is on record from the start) when ``adv_weight`` > 0; the generator's
adversarial term joins its maximum-likelihood term on those steps once ``warmup_steps`` generator
steps of MLE are done (under --budget: or ``warmup_share`` of the budget is spent, whichever first).
The engine decides that at each epoch's start, so G's adversarial part begins at an epoch boundary
and the engine saves the state before it as <model>_mle.pt (the likelihood-only generator, for a
paired adversarial-vs-MLE comparison from one run).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from train.losses import balance_penalty, d_loss, gradient_penalty
from utils.config import option
from utils.errors import ConfigError

GAN_LOSSES = ("bce", "wgan-gp", "hinge")


@dataclass(frozen=True)
class GanOptions:
    """Fields shared by the GAN families' model configs (they subclass this)."""

    loss: str = option("bce", "bce (non-saturating) | wgan-gp | hinge")
    gp_weight: float = option(10.0, "WGAN-GP gradient penalty weight")
    label_smoothing: float = option(0.0, "one-sided label smoothing: real target 1 - s (bce)")
    d_steps: int = option(1, "discriminator updates per adversarial step")
    minibatch_std: bool = option(True, "batch-diversity feature in the discriminator")
    adv_weight: float = option(0.0, "weight of the generator's adversarial term; 0 = maximum likelihood only")
    adv_every: int = option(4, "adversarial (D, then G) updates on every n-th step from step 0")
    warmup_steps: int = option(500, "generator steps of MLE alone before its adversarial term starts")
    warmup_share: float = option(0.4, "under --budget, the warm-up also ends once this fraction of the budget is spent")
    mle_weight: float = option(1.0, "teacher-forced cross-entropy kept beside the adversarial term")

    def validate(self):
        if self.loss not in GAN_LOSSES:
            raise ConfigError(f"model.loss must be one of {', '.join(GAN_LOSSES)}, got {self.loss!r}")
        if self.d_steps < 1 or self.adv_every < 1:
            raise ConfigError("model.d_steps and model.adv_every must be >= 1")
        if self.warmup_steps < 0:
            raise ConfigError("model.warmup_steps must be >= 0")
        if not 0 <= self.warmup_share <= 1:
            raise ConfigError("model.warmup_share must be between 0 and 1")

    def d_active(self, step: int) -> bool:
        return self.adv_weight > 0 and step % self.adv_every == 0

    def warm_over(self, step: int, budget_used: float | None = None) -> bool:
        """Whether G's warm-up is over: after warmup_steps steps or, under --budget, warmup_share of
        the budget, whichever comes first (so a short budget still reaches the adversarial phase)."""
        return self.adv_weight > 0 and (step >= self.warmup_steps or
                                        (budget_used is not None and budget_used >= self.warmup_share))

    def g_active(self, step: int, budget_used: float | None = None, adversarial: bool | None = None) -> bool:
        """Whether this step adds G's adversarial term. adversarial: the engine's decision for the
        whole epoch (warm_over at the epoch's start, so the adversarial part starts at an epoch
        boundary and the state before it is a pure likelihood snapshot); None decides per step."""
        over = self.warm_over(step, budget_used) if adversarial is None else adversarial
        return self.d_active(step) and over


def adversarial_now(family, cfg, ctx) -> bool:
    """Whether the generator may take adversarial steps in the epoch ``ctx`` starts (the engine
    decides once per epoch, and saves <model>_mle.pt, the state trained by likelihood alone, before
    the first such epoch): in the family's adversarial phase (seqgan), else once a GAN config's
    warm-up is over and, under --curriculum, the windows have reached their full length (so the
    adversarial part and the likelihood snapshot before it are both at the length the run is for)."""
    if family.adversarial_phase is not None:
        return ctx.phase == family.adversarial_phase
    over = getattr(cfg.model, "warm_over", None)
    return bool(over and over(ctx.step, ctx.budget_used)) and ctx.length >= cfg.data.seq_len


def d_metrics(real_logits: torch.Tensor, fake_logits: torch.Tensor, loss: torch.Tensor) -> dict:
    """d_acc thresholds D's logit at 0; d_auc says whether D ranks real above fake at all, whatever
    its bias (0.5 = cannot tell them apart)."""
    r, f = real_logits.detach().float(), fake_logits.detach().float()
    acc_r, acc_f = (r > 0).float().mean(), (f < 0).float().mean()
    # the Mann-Whitney form, on the device (tensors: the engine reads them every few steps, not per step)
    gt, eq = r[:, None] > f[None, :], r[:, None] == f[None, :]
    auc = gt.float().mean() + 0.5 * eq.float().mean()
    return {"d_loss": loss.detach(), "d_acc_real": acc_r, "d_acc_fake": acc_f,
            "d_acc": 0.5 * (acc_r + acc_f), "d_auc": auc}


def discriminator_step(ctx, o: GanOptions, real: torch.Tensor, critics: list, fakes: list,
                       refresh=None) -> dict:
    """``o.d_steps`` updates of optimiser group 'd'. critics[i] judges (real, fakes[i]) (inputs
    (B, L, 4)); their losses add up. ``refresh()`` draws new fakes for the second and later
    updates (None: reuse). The figures are the last critic's."""
    for i in range(o.d_steps):
        if i and refresh is not None:
            fakes = refresh()
        loss = real.new_zeros(())
        for D, fake in zip(critics, fakes):
            fake = fake.detach()
            r, f = D(real), D(fake)
            loss = loss + d_loss(r, f, o.loss, o.label_smoothing)
            if o.loss == "wgan-gp":
                loss = loss + o.gp_weight * gradient_penalty(D, real, fake, ctx.generator)
        ctx.optimize("d", loss)
    return d_metrics(r, f, loss)


def generator_update(ctx, loss_g: torch.Tensor, probs: torch.Tensor | None, mle_weight: float,
                     out: dict) -> dict:
    """End of a GAN generator step: without an MLE term the GC-balanced penalty applies to the
    generator's output distribution probs (B, L, 4), (1 - w) loss + w penalty; then one optimiser
    step on group 'g' if anything carries gradient. Records g_loss in out."""
    if probs is not None and ctx.balance_weight > 0 and mle_weight == 0:
        pen = balance_penalty(probs, ctx.target_gc, ctx.ref_freq)
        loss_g = (1 - ctx.balance_weight) * loss_g + ctx.balance_weight * pen
    if loss_g.requires_grad:
        ctx.optimize("g", loss_g)
    out["g_loss"] = loss_g.detach()
    return out
