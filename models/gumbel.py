"""Gumbel-softmax GAN: an LSTM generator whose every step reads the previous step's Gumbel-softmax
output, against a CNN or bidirectional-LSTM discriminator.

Generator : z (100) [+ class embedding] -> Linear -> LSTM initial (h, c); LSTM (256) over the
            previous base (one-hot, or the previous Gumbel-softmax sample when free running)
            -> dropout 0.2 -> Linear -> logits over A, C, G, T.
D (cnn)   : three Conv1d blocks (64, 128, 256 filters) each followed by max pooling -> [mean, max]
            pool (+ minibatch std) -> Dense 256 -> dropout 0.3 -> spectral-normalised logit.
D (lstm)  : bidirectional LSTM (256) -> [mean, max] pool (+ minibatch std) -> same head.
            Conditional (labelled data, or --condition gc; models.condition) both discriminators
            add a projection term <embed(class), h>, and the generator reads the class embedding
            in its initial state and at every step. Its MLE term trains the null class at
            model.label_drop, for classifier-free guidance (--guidance W: the same noise runs with
            the class and with the null class, and each base is drawn from the mixed logits).

The generator is autoregressive, so it is first trained by maximum likelihood with teacher forcing
(model.warmup_steps), as RelGAN and SeqGAN do. The adversarial options and timing are train.gan's:
the discriminator trains from the start (so its accuracy is monitored at every epoch); the
generator's adversarial term, weighted by model.adv_weight, joins its MLE term after the warm-up. Keeping the MLE term is what
keeps the adversarial phase from collapsing the generator (the report's GC -> 0 and diversity -> 0).
model.adv_weight is 0 by default (likelihood only): at 70 bp the adversarial phase changed nothing
measurable and at 500 bp it made every sample worse (docs/benchmarks.md, issue 18).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import (ContextLogits, NgramOptions, gumbel_softmax, minibatch_std, ngram_closing_fit,
                           place_prompt, sample_categorical)
from models.condition import (Classes, ClassEmbedding, ConditionOptions, GuidanceOptions, classes_of, mix,
                              requested, with_null)
from models.registry import ClosingFit, DataStats, Family, register
from train.gan import GanOptions, discriminator_step, generator_update
from train.losses import balanced_loss, g_loss, heldout_nll
from utils.config import option
from utils.errors import ConfigError


@dataclass(frozen=True)
class GumbelConfig(GuidanceOptions, ConditionOptions, NgramOptions, GanOptions):
    noise_dim: int = option(100, "generator noise (sets the LSTM's initial hidden and cell states)")
    hidden: int = option(256, "generator LSTM units")
    layers: int = option(1, "generator LSTM layers")
    dropout: float = option(0.2, "generator dropout on LSTM outputs")
    straight_through: bool = option(True, "D sees hard one-hots with the soft gradient (false: soft samples)")
    disc: str = option("cnn", "gumbel: discriminator, cnn or lstm", flag="--disc")
    d_filters: tuple = option((64, 128, 256), "CNN discriminator filters per convolution")
    d_kernel: int = option(5, "CNN discriminator kernel width")
    d_hidden: int = option(256, "bidirectional-LSTM units (lstm) and dense units (both)")
    d_dropout: float = option(0.3, "discriminator dropout")
    adv_weight: float = option(0.0, "weight of G's adversarial term (after model.warmup_steps); 0 = likelihood "
                                    "only, the default since it measured better at 500 bp (docs/benchmarks.md)")
    warmup_steps: int = option(2000, "generator steps of MLE alone before its adversarial term starts")

    def validate(self):
        super().validate()
        if self.disc not in ("cnn", "lstm"):
            raise ConfigError(f"model.disc must be cnn or lstm, got {self.disc!r}")
        if self.hidden < 1 or self.layers < 1:
            raise ConfigError("model.hidden and layers must be >= 1")
        if not self.d_filters:
            raise ConfigError("model.d_filters needs at least one convolution")


class LSTMGenerator(nn.Module):
    def __init__(self, c: GumbelConfig, n_labels: int):
        super().__init__()
        self.c = c
        # classes 0..n-1 and the null class n (classifier-free guidance)
        self.label = ClassEmbedding(n_labels + 1, c.label_dim) if n_labels else None
        e = c.label_dim if n_labels else 0
        self.init_h = nn.Linear(c.noise_dim + e, c.layers * c.hidden)
        self.init_c = nn.Linear(c.noise_dim + e, c.layers * c.hidden)
        self.lstm = nn.LSTM(4 + e, c.hidden, c.layers, batch_first=True,
                            dropout=c.dropout if c.layers > 1 else 0.0)
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(c.hidden, 4)
        self.ngram = ContextLogits(c.ngram_order) if c.ngram_order else None

    def _cond(self, y, B, device):
        if self.label is None:
            return None
        if y is None:
            raise ValueError("a conditional generator needs classes")
        return self.label(y.to(device))

    def init_state(self, z, e):
        zin = z if e is None else torch.cat([z, e], -1)
        B, c = z.shape[0], self.c

        def shape(t):
            return torch.tanh(t).reshape(B, c.layers, c.hidden).transpose(0, 1).contiguous()

        return shape(self.init_h(zin)), shape(self.init_c(zin))

    def noise(self, B, device, generator):
        return torch.randn(B, self.c.noise_dim, device=device, generator=generator)

    def network_logits(self, x, z, y=None):
        """Teacher-forced LSTM logits (B, L, 4), without the n-gram table: position t reads the true
        base t-1 (zeros at t = 0)."""
        B, L = x.shape
        e = self._cond(y, B, x.device)
        inp = F.pad(F.one_hot(x[:, :-1], 4).float(), (0, 0, 1, 0))
        if e is not None:
            inp = torch.cat([inp, e.unsqueeze(1).expand(B, L, -1)], -1)
        h, _ = self.lstm(inp, self.init_state(z, e))
        return self.out(self.drop(h))

    def forward(self, x, z, y=None):
        """Teacher-forced logits (B, L, 4), the n-gram table's included."""
        logits = self.network_logits(x, z, y)
        return logits if self.ngram is None else logits + self.ngram(x)

    def free_run(self, B, L, z, y=None, *, tau=1.0, hard=True, generator=None):
        """Differentiable sampling: each step reads the previous step's Gumbel-softmax sample.
        Returns samples (B, L, 4) (straight-through one-hots if hard) and logits (B, L, 4)."""
        e = self._cond(y, B, z.device)
        state = self.init_state(z, e)
        prev = z.new_zeros(B, 4)
        outs, logits = [], []
        bases = torch.zeros(B, L, dtype=torch.long, device=z.device)  # the n-gram table's context
        for t in range(L):
            inp = prev if e is None else torch.cat([prev, e], -1)
            h, state = self.lstm(inp.unsqueeze(1), state)
            lg = self.out(self.drop(h[:, 0]))
            if self.ngram is not None:
                lg = lg + self.ngram.step(bases, t)
            prev = gumbel_softmax(lg, tau=tau, hard=hard, generator=generator)
            bases[:, t] = prev.detach().argmax(-1)
            outs.append(prev)
            logits.append(lg)
        return torch.stack(outs, 1), torch.stack(logits, 1)

    @torch.no_grad()
    def generate(self, n, L, device, generator, temperature=1.0, prompt=None, y=None, gc_tilt=0.0, guidance=1.0):
        """(n, L) bases sampled one by one; a prompt fixes the first bases. guidance != 1
        (classifier-free): the same noise also runs with the null class, and each base is drawn from
        null + guidance * (cond - null) network logits (the n-gram table, which has no class, after)."""
        z = self.noise(n, device, generator)
        guided = self.label is not None and guidance != 1.0
        rows = 2 if guided else 1
        if guided:
            self.label.check_null()
            y = with_null(y.to(device), self.label)
        e = self._cond(y, rows * n, device)
        state = self.init_state(z.repeat(rows, 1), e)
        x = torch.zeros(n, L, dtype=torch.long, device=device)
        p = place_prompt(x, prompt)
        prev = torch.zeros(rows * n, 4, device=device)
        for t in range(L):
            inp = prev if e is None else torch.cat([prev, e], -1)
            h, state = self.lstm(inp.unsqueeze(1), state)
            if t >= p:
                lg = self.out(h[:, 0])
                if guided:
                    lg = mix(lg[:n], lg[n:], guidance)
                if self.ngram is not None:
                    lg = lg + self.ngram.step(x, t)
                x[:, t] = sample_categorical(lg, temperature, generator, gc_tilt)
            prev = F.one_hot(x[:, t], 4).float().repeat(rows, 1)
        return x


class _Head(nn.Module):
    """Pooled features -> (minibatch std) -> Dense -> LeakyReLU -> dropout -> SN logit (+ projection)."""

    def __init__(self, d_feat: int, c: GumbelConfig, n_labels: int):
        super().__init__()
        self.mbstd = c.minibatch_std
        self.fc = nn.Linear(d_feat + int(c.minibatch_std), c.d_hidden)
        self.drop = nn.Dropout(c.d_dropout)
        self.out = nn.utils.parametrizations.spectral_norm(nn.Linear(c.d_hidden, 1))
        self.proj = nn.Embedding(n_labels, c.d_hidden) if n_labels else None

    def forward(self, f, y=None):
        if self.mbstd:
            f = minibatch_std(f)
        h = self.drop(F.leaky_relu(self.fc(f), 0.2))
        logit = self.out(h).squeeze(1)
        if self.proj is not None and y is not None:
            logit = logit + (self.proj(y) * h).sum(1) / h.shape[1] ** 0.5
        return logit


class CNNDiscriminator(nn.Module):
    def __init__(self, c: GumbelConfig, n_labels: int):
        super().__init__()
        layers, d_in = [], 4
        for f in map(int, c.d_filters):
            layers += [nn.Conv1d(d_in, f, c.d_kernel, padding=c.d_kernel // 2), nn.LeakyReLU(0.2),
                       nn.MaxPool1d(2, ceil_mode=True)]
            d_in = f
        self.conv = nn.Sequential(*layers)
        self.head = _Head(2 * d_in, c, n_labels)

    def forward(self, x, y=None):  # (B, L, 4) -> (B,)
        h = self.conv(x.transpose(1, 2))
        return self.head(torch.cat([h.mean(-1), h.amax(-1)], 1), y)


class LSTMDiscriminator(nn.Module):
    def __init__(self, c: GumbelConfig, n_labels: int):
        super().__init__()
        self.lstm = nn.LSTM(4, c.d_hidden, batch_first=True, bidirectional=True)
        self.head = _Head(4 * c.d_hidden, c, n_labels)

    def forward(self, x, y=None):  # (B, L, 4) -> (B,)
        h, _ = self.lstm(x)
        return self.head(torch.cat([h.mean(1), h.amax(1)], 1), y)


def _bins_to_classes(module, state_dict, prefix, *args) -> None:
    """Checkpoints from before labels (stop 17): a --condition gc model kept its bin edges in a
    "bins" module; today they are the "classes" module's, beside label frequencies (none here)."""
    for k in [k for k in state_dict if k.startswith(prefix + "bins.")]:
        state_dict[prefix + "classes." + k[len(prefix) + 5:]] = state_dict.pop(k)
        state_dict.setdefault(prefix + "classes.label_freq", torch.zeros(0))


@register("gumbel")
class Gumbel(Family):
    Config = GumbelConfig
    conditional = True
    labelled = True
    guided = True
    select_by = "val_nll"

    def build(self, cfg, stats: DataStats) -> nn.ModuleDict:
        c = cfg.model
        classes = Classes(stats, c)
        n = classes.n
        D = CNNDiscriminator(c, n) if c.disc == "cnn" else LSTMDiscriminator(c, n)
        nets = {"G": LSTMGenerator(c, n), "D": D}
        if n:
            nets["classes"] = classes
        nets = nn.ModuleDict(nets)
        nets.register_load_state_dict_pre_hook(_bins_to_classes)
        return nets

    def optimizers(self, nets, cfg):
        return {"g": (list(nets["G"].parameters()), cfg.train.lr_g),
                "d": (list(nets["D"].parameters()), cfg.train.lr_d)}

    def train_step(self, nets, batch, ctx) -> dict[str, float]:
        c = ctx.cfg.model
        G, D = nets["G"], nets["D"]
        B, L = batch.shape
        y = classes_of(nets, batch, ctx.batch_labels)
        out: dict[str, float] = {}
        g_adv = c.g_active(ctx.step, ctx.budget_used, ctx.adversarial)
        if c.d_active(ctx.step):
            # the sample keeps its graph only when G also takes an adversarial step on it
            with torch.set_grad_enabled(g_adv):
                fake, logits_f = G.free_run(B, L, G.noise(B, batch.device, ctx.generator), y,
                                            tau=ctx.temperature, hard=c.straight_through,
                                            generator=ctx.generator)
            out.update(discriminator_step(ctx, c, F.one_hot(batch, 4).float(), [lambda v: D(v, y)], [fake]))
        loss_g = torch.zeros((), device=batch.device)
        if c.mle_weight > 0:
            # classifier-free guidance: some windows train the null class (model.label_drop); D and
            # the adversarial term keep every window's class
            yd = None if y is None else nets["classes"].dropped(y, c.label_drop, ctx.generator)
            logits = G(batch, G.noise(B, batch.device, ctx.generator), yd)
            mle = balanced_loss(logits, batch, weight=ctx.balance_weight, target_gc=ctx.target_gc,
                                ref_freq=ctx.ref_freq)
            loss_g = loss_g + c.mle_weight * mle
            out["mle"] = mle.detach()
        if g_adv:
            adv = g_loss(D(fake, y), c.loss)
            loss_g = loss_g + c.adv_weight * adv
            out["g_adv"] = adv.detach()
        return generator_update(ctx, loss_g, F.softmax(logits_f, -1) if g_adv else None, c.mle_weight, out)

    def evaluate(self, nets, ctx) -> dict[str, float]:
        """Held-out NLL of the generator (teacher-forced, each window with its own class)."""
        G = nets["G"]
        was = G.training
        G.eval()
        out = heldout_nll(lambda x, g, lab: G(x, G.noise(x.shape[0], x.device, g), classes_of(nets, x, lab)),
                          ctx.val, ctx.device, seed=ctx.cfg.train.seed, labels=ctx.val_labels)
        G.train(was)
        return out

    def closing_fit(self, cfg) -> ClosingFit | None:
        """Refit the generator's n-gram table with the LSTM frozen (models.blocks.refit_context_logits)."""
        def network_logits(nets):
            G = nets["G"]
            return lambda x, g, lab: G.network_logits(x, G.noise(x.shape[0], x.device, g),
                                                      classes_of(nets, x, lab))

        return ngram_closing_fit(cfg.model, lambda nets: nets["G"].ngram, network_logits)

    @torch.no_grad()
    def sample(self, nets, n, length, *, temperature=1.0, generator=None, prompt=None, gc=None, label=None,
               gc_tilt=0.0, guidance=1.0):
        G = nets["G"]
        dev = next(G.parameters()).device
        chunks = []
        for s in range(0, n, 4096):
            m = min(4096, n - s)
            y = requested(nets, m, dev, generator, label=label, gc=gc)
            chunks.append(G.generate(m, length, dev, generator, temperature, prompt, y, gc_tilt, guidance))
        return torch.cat(chunks)
