"""Stacked transformer GAN: a coarse generator (Stage I), a refining generator (Stage II), each judged
by its own discriminator; trained end to end.

Stage I : noise (B, L, z) + global noise -> pre-norm transformer -> logits (B, L, 4)
Stage II: softmax(Stage I) + fresh noise -> pre-norm transformer -> logits added to Stage I's
D1, D2  : (B, L, 4) -> LayerNorm'd pre-norm transformer -> [mean, max] pool (+ minibatch std)
          -> LeakyReLU(0.2) head -> spectral-normalised output layer -> one logit
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import TransformerStack, gumbel_softmax, kmer_probs, sample_categorical, xavier_init
from models.registry import DataStats, Family, register
from train.losses import GAN_LOSSES, balance_penalty, d_loss, g_loss, gradient_penalty
from utils.errors import ConfigError


@dataclass(frozen=True)
class StackedConfig:
    d_model: int = 64  # transformer width (generators and discriminators)
    g_layers: int = 2  # layers per generator stage
    d_layers: int = 2  # layers per discriminator
    n_heads: int = 4
    noise_dim: int = 16  # per-position noise channels (global noise has the same size)
    dropout: float = 0.0
    d_kernel: int = 5  # width of D's convolutional input projection (1 = per-position Linear)
    loss: str = "bce"  # bce | wgan-gp | hinge
    gp_weight: float = 10.0  # WGAN-GP gradient penalty weight
    d_input: str = "gumbel"  # what D sees of G: gumbel (straight-through one-hot) | soft
    label_smoothing: float = 0.1  # one-sided: real target 1 - s (bce)
    d_steps: int = 1  # discriminator updates per generator update
    minibatch_std: bool = True  # batch-diversity feature in the discriminators
    stage1_weight: float = 0.5  # weight of the Stage I adversarial term in the generator loss
    kmer_weight: float = 10.0  # weight of k-mer spectrum matching (k = 1..kmer_k) on G's output
    kmer_k: int = 4

    def validate(self):
        if self.loss not in GAN_LOSSES:
            raise ConfigError(f"model.loss must be one of {', '.join(GAN_LOSSES)}, got {self.loss!r}")
        if self.d_input not in ("gumbel", "soft"):
            raise ConfigError(f"model.d_input must be gumbel or soft, got {self.d_input!r}")
        if self.d_model % self.n_heads:
            raise ConfigError("model.d_model must be a multiple of model.n_heads")
        if self.d_steps < 1 or self.kmer_k < 1:
            raise ConfigError("model.d_steps and model.kmer_k must be >= 1")


class StageGenerator(nn.Module):
    def __init__(self, c: StackedConfig, d_in: int, max_len: int):
        super().__init__()
        self.body = TransformerStack(d_in, c.d_model, c.g_layers, c.n_heads, max_len, c.dropout)
        self.head = nn.Linear(c.d_model, 4)
        xavier_init(self, gain=0.1)

    def forward(self, x):  # (B, L, d_in) -> (B, L, 4)
        return self.head(self.body(x))


class Discriminator(nn.Module):
    def __init__(self, c: StackedConfig, max_len: int):
        super().__init__()
        self.body = TransformerStack(4, c.d_model, c.d_layers, c.n_heads, max_len, c.dropout,
                                     kernel=c.d_kernel)
        self.mbstd = c.minibatch_std
        self.hidden = nn.Linear(2 * c.d_model + int(c.minibatch_std), c.d_model)
        self.out = nn.utils.parametrizations.spectral_norm(nn.Linear(c.d_model, 1))

    def forward(self, x):  # (B, L, 4) -> (B,)
        h = self.body(x)
        f = torch.cat([h.mean(1), h.amax(1)], dim=1)  # (B, 2d)
        if self.mbstd:
            # Mean over features of the batch standard deviation: a collapsed batch is easy to spot.
            s = f.std(0, unbiased=False).mean().expand(f.shape[0], 1) if f.shape[0] > 1 else f.new_zeros(f.shape[0], 1)
            f = torch.cat([f, s], 1)
        return self.out(F.leaky_relu(self.hidden(f), 0.2)).squeeze(1)


class StackedGenerator(nn.Module):
    def __init__(self, c: StackedConfig, max_len: int):
        super().__init__()
        self.c = c
        self.stage1 = StageGenerator(c, 2 * c.noise_dim, max_len)
        self.stage2 = StageGenerator(c, 4 + c.noise_dim, max_len)

    def noise(self, n, L, device, generator):
        z = torch.randn(n, L, self.c.noise_dim, device=device, generator=generator)
        zg = torch.randn(n, 1, self.c.noise_dim, device=device, generator=generator).expand(n, L, -1)
        z2 = torch.randn(n, L, self.c.noise_dim, device=device, generator=generator)
        return torch.cat([z, zg], -1), z2

    def forward(self, n, L, device, generator):
        """-> (stage1 logits, stage2 logits), each (n, L, 4)."""
        z1, z2 = self.noise(n, L, device, generator)
        l1 = self.stage1(z1)
        l2 = l1 + self.stage2(torch.cat([F.softmax(l1, -1), z2], -1))
        return l1, l2


@register("stacked")
class Stacked(Family):
    Config = StackedConfig

    def build(self, cfg, stats: DataStats) -> nn.ModuleDict:
        c, L = cfg.model, stats.seq_len
        return nn.ModuleDict({"G": StackedGenerator(c, L), "D1": Discriminator(c, L),
                              "D2": Discriminator(c, L)})

    def param_groups(self, nets):
        return {"g": list(nets["G"].parameters()),
                "d": list(nets["D1"].parameters()) + list(nets["D2"].parameters())}

    def _d_view(self, logits, c, ctx):
        if c.d_input == "gumbel":
            return gumbel_softmax(logits, tau=ctx.temperature, hard=True, generator=ctx.generator)
        return F.softmax(logits / ctx.temperature, -1)

    def train_step(self, nets, batch, ctx) -> dict[str, float]:
        c = ctx.cfg.model
        G, D1, D2 = nets["G"], nets["D1"], nets["D2"]
        B, L = batch.shape
        real = F.one_hot(batch, 4).float()  # (B, L, 4)
        out = {}
        for _ in range(c.d_steps):
            with torch.no_grad():
                l1, l2 = G(B, L, batch.device, ctx.generator)
                f1, f2 = self._d_view(l1, c, ctx), self._d_view(l2, c, ctx)
            r1, r2, o1, o2 = D1(real), D2(real), D1(f1), D2(f2)
            loss_d = d_loss(r1, o1, c.loss, c.label_smoothing) + d_loss(r2, o2, c.loss, c.label_smoothing)
            if c.loss == "wgan-gp":
                loss_d = loss_d + c.gp_weight * (gradient_penalty(D1, real, f1, ctx.generator)
                                                 + gradient_penalty(D2, real, f2, ctx.generator))
            ctx.optimize("d", loss_d)
        thr = 0.0
        out["d_loss"] = float(loss_d.detach())
        out["d_acc_real"] = float((r2 > thr).float().mean())
        out["d_acc_fake"] = float((o2 < thr).float().mean())

        l1, l2 = G(B, L, batch.device, ctx.generator)
        f1, f2 = self._d_view(l1, c, ctx), self._d_view(l2, c, ctx)
        loss_g = g_loss(D2(f2), c.loss) + c.stage1_weight * g_loss(D1(f1), c.loss)
        out["g_adv"] = float(loss_g.detach())
        p2 = F.softmax(l2, -1)
        if c.kmer_weight > 0:
            # Moment matching: the expected k-mer spectra of G's output against this batch's.
            km = sum(kmer_js_torch(kmer_probs(p2, k), kmer_probs(real, k)) for k in range(1, c.kmer_k + 1))
            loss_g = loss_g + c.kmer_weight * km
            out["kmer_js"] = float(km.detach())
        if ctx.balance_weight > 0:
            pen = balance_penalty(p2, ctx.target_gc, ctx.ref_freq)
            loss_g = (1 - ctx.balance_weight) * loss_g + ctx.balance_weight * pen
            out["balance"] = float(pen.detach())
        ctx.optimize("g", loss_g)
        out["g_loss"] = float(loss_g.detach())
        return out

    @torch.no_grad()
    def sample(self, nets, n, length, *, temperature=1.0, generator=None, prompt=None):
        G = nets["G"]
        max_len = G.stage1.body.pos.shape[1]
        if length > max_len:
            raise ConfigError(f"the stacked model was trained on {max_len} bp; it cannot generate {length} bp")
        dev = next(G.parameters()).device
        out = []
        for s in range(0, n, 4096):
            _, l2 = G(min(4096, n - s), max_len, dev, generator)
            out.append(sample_categorical(l2, temperature, generator)[:, :length])
        return torch.cat(out)


def kmer_js_torch(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Differentiable Jensen-Shannon divergence (bits) of two distributions."""
    m = 0.5 * (p + q)
    eps = 1e-8
    kl = lambda a: (a * (torch.log2(a + eps) - torch.log2(m + eps))).sum()  # noqa: E731
    return 0.5 * kl(p) + 0.5 * kl(q)
