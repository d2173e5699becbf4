"""Stacked transformer GAN: a coarse generator (Stage I), a refining generator (Stage II), each judged
by its own discriminator; trained end to end.

Stage I : noise (B, L, z) + global noise -> pre-norm transformer -> coarse logits l1 (B, L, 4)
Stage II: [softmax(l1), fresh noise, previous base] -> causal pre-norm transformer -> l2 = l1 + delta
          (+ n-gram logits: a table indexed by the previous model.ngram_order bases, the direct
          connection of an RNNME language model; after training it is refitted to maximum
          likelihood with the network frozen, model.ngram_refit windows)
          The refiner reads the bases it has already emitted, so the final sequence is sampled base
          by base: a non-autoregressive generator samples every position independently given its
          logits and, measured here, did not learn any k-mer structure beyond composition.
D1, D2  : (B, L, 4) -> conv-projected, LayerNorm'd pre-norm transformer -> [mean, max] pool
          (+ minibatch std) -> LeakyReLU(0.2) head -> spectral-normalised output layer -> one logit
Classes : with labelled data or --condition gc (models.condition), a class embedding joins Stage I's
          noise channels and Stage II's (its null class trained at model.label_drop, for
          classifier-free guidance at generation: --guidance W mixes the two passes' logits at every
          base); the discriminators add a projection term <embed(class), h>.

Generator loss = adversarial (D2 on the final sample + stage1_weight * D1 on Stage I's Gumbel sample,
through straight-through one-hots) + mle_weight * teacher-forced cross-entropy of Stage II
+ the GC-balanced term (train.balance_weight). The adversarial options and timing are train.gan's:
G's adversarial terms start after model.warmup_steps steps, so the discriminators judge a generator
that already writes DNA-like sequences; the MLE term keeps adversarial updates from destroying
that. D1 and D2 exist only when model.adv_weight > 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import (CausalTransformer, ContextLogits, NgramOptions, PositionOptions, TransformerStack, gumbel_softmax,
                           minibatch_std, ngram_closing_fit, place_prompt, sample_categorical, xavier_init)
from models.condition import Classes, ConditionOptions, GuidanceOptions, classes_of, mix, requested, with_null
from models.registry import ClosingFit, DataStats, Family, register
from train.gan import GanOptions, discriminator_step, generator_update
from train.losses import balanced_loss, g_loss, heldout_nll, rows_per_pass
from utils.config import option
from utils.errors import ConfigError


@dataclass(frozen=True)
class StackedConfig(PositionOptions, GuidanceOptions, ConditionOptions, NgramOptions, GanOptions):
    d_model: int = option(64, "transformer width (generators and discriminators)")
    g_layers: int = option(2, "layers per generator stage")
    d_layers: int = option(2, "layers per discriminator")
    n_heads: int = option(4, "attention heads")
    noise_dim: int = option(16, "per-position noise channels (global noise has the same size)")
    dropout: float = option(0.0, "dropout in the transformers")
    init_gain: float = option(0.1, "Xavier gain of each generator stage's input and output layers")
    d_kernel: int = option(5, "width of D's convolutional input projection (1 = per-position Linear)")
    g_kernel: int = option(6, "width of Stage II's causal convolutional input projection (sees k-mers)")
    label_smoothing: float = option(0.1, "one-sided label smoothing: real target 1 - s (bce)")
    stage1_weight: float = option(0.5, "weight of the Stage I adversarial term within the adversarial terms")

    def validate(self):
        super().validate()
        if self.d_model % self.n_heads:
            raise ConfigError("model.d_model must be a multiple of model.n_heads")


class Discriminator(nn.Module):
    def __init__(self, c: StackedConfig, max_len: int, n_classes: int = 0):
        super().__init__()
        self.body = TransformerStack(4, c.d_model, c.d_layers, c.n_heads, max_len, c.dropout,
                                     kernel=c.d_kernel)
        self.mbstd = c.minibatch_std
        self.hidden = nn.Linear(2 * c.d_model + int(c.minibatch_std), c.d_model)
        self.out = nn.utils.parametrizations.spectral_norm(nn.Linear(c.d_model, 1))
        self.proj = nn.Embedding(n_classes, c.d_model) if n_classes else None

    def forward(self, x, y=None):  # (B, L, 4) [, (B,) classes] -> (B,)
        h = self.body(x)
        f = torch.cat([h.mean(1), h.amax(1)], dim=1)  # (B, 2d)
        if self.mbstd:
            f = minibatch_std(f)
        h = F.leaky_relu(self.hidden(f), 0.2)
        logit = self.out(h).squeeze(1)
        if self.proj is not None and y is not None:  # projection discriminator (Miyato & Koyama 2018)
            logit = logit + (self.proj(y) * h).sum(1) / h.shape[1] ** 0.5
        return logit


class StackedGenerator(nn.Module):
    def __init__(self, c: StackedConfig, max_len: int, n_classes: int = 0):
        super().__init__()
        self.c, self.max_len = c, max_len
        # classes 0..n-1 and the null class n (classifier-free guidance)
        self.cls = nn.Embedding(n_classes + 1, c.label_dim) if n_classes else None
        e = c.label_dim if n_classes else 0
        self.stage1 = TransformerStack(2 * c.noise_dim + e, c.d_model, c.g_layers, c.n_heads, max_len, c.dropout)
        self.head1 = nn.Linear(c.d_model, 4)
        self.stage2 = CausalTransformer(4 + c.noise_dim + e + 4, c.d_model, c.g_layers, c.n_heads, max_len,
                                        c.dropout, kernel=c.g_kernel, rel_pos=c.rel_pos,
                                        rope=c.rope)
        self.head2 = nn.Linear(c.d_model, 4)
        self.ngram = ContextLogits(c.ngram_order) if c.ngram_order else None
        # The prototype's small-gain Xavier init on each stage's input and output layers; inside the
        # transformers PyTorch's init is kept (gain 0.1 there too made G learn nothing, measured).
        for m in (self.stage1.proj, self.head1, self.stage2.proj, self.head2):
            xavier_init(m, gain=c.init_gain)

    def noise(self, n: int, L: int, device, generator):
        """Stage I's noise (n, L, 2z: per position and global) and Stage II's (n, L, z)."""
        z = torch.randn(n, L, self.c.noise_dim, device=device, generator=generator)
        zg = torch.randn(n, 1, self.c.noise_dim, device=device, generator=generator).expand(n, L, -1)
        z2 = torch.randn(n, L, self.c.noise_dim, device=device, generator=generator)
        return torch.cat([z, zg], -1), z2

    def coarse(self, n: int, L: int, device, generator, y=None, noise=None):
        """Stage I logits (n, L, 4) and Stage II's conditioning channels (n, L, z [+ e]): its noise,
        and the class embedding of y (n,) when the generator is conditional."""
        z1, z2 = noise if noise is not None else self.noise(n, L, device, generator)
        if self.cls is not None:
            if y is None:
                raise ValueError("a conditional generator needs classes")
            e = self.cls(y).unsqueeze(1).expand(-1, L, -1)
            z1, z2 = torch.cat([z1, e], -1), torch.cat([z2, e], -1)
        return self.head1(self.stage1(z1)), z2

    def refine(self, l1, z2, x):
        """Stage II logits (n, L, 4) given the bases x (n, L): position t sees x[:, :t] only."""
        prev = F.pad(F.one_hot(x[:, :-1], 4).float(), (0, 0, 1, 0))  # shifted right; zeros = start
        l2 = l1 + self.head2(self.stage2(torch.cat([F.softmax(l1, -1), z2, prev], -1)))
        return l2 if self.ngram is None else l2 + self.ngram(x)

    def _inputs(self, l1, z2):
        """Stage II inputs with the previous-base channels still empty, left-padded for the conv."""
        k = self.stage2.kernel
        inp = torch.cat([F.softmax(l1, -1), z2, torch.zeros_like(l1)], -1)
        return F.pad(inp, (0, 0, k - 1, 0))

    @torch.no_grad()
    def generate(self, n, L, device, generator, temperature=1.0, prompt=None, y=None, guidance=1.0, gc_tilt=0.0):
        """Sample (n, L) bases base by base; a prompt fixes the first bases. Also returns l1, z2.
        guidance != 1 (classifier-free): the same noise also runs with the null class, and each
        base is drawn from null + guidance * (cond - null) logits."""
        guided = self.cls is not None and guidance != 1.0
        if guided:
            z1, z2 = self.noise(n, L, device, generator)
            y2 = with_null(y, self.cls)
            l1, z2 = self.coarse(2 * n, L, device, generator, y2, noise=(z1.repeat(2, 1, 1), z2.repeat(2, 1, 1)))
        else:
            l1, z2 = self.coarse(n, L, device, generator, y)
        rows = 2 if guided else 1
        x = torch.zeros(n, L, dtype=torch.long, device=device)
        p = place_prompt(x, prompt)
        k = self.stage2.kernel
        inp = self._inputs(l1, z2)  # (rows n, k-1+L, d_in); position t is row t+k-1
        caches = [{} for _ in self.stage2.blocks]
        for t in range(L):
            if t > 0:  # the base emitted at t-1 is position t's "previous base" input
                inp[:, t + k - 1, -4:] = F.one_hot(x[:, t - 1], 4).float().repeat(rows, 1)
            h = self.stage2.step(inp[:, t : t + k], t, caches)
            if t >= p:
                logits = l1[:, t] + self.head2(h[:, 0])
                if guided:
                    logits = mix(logits[:n], logits[n:], guidance)
                if self.ngram is not None:
                    logits = logits + self.ngram.step(x, t)
                x[:, t] = sample_categorical(logits, temperature, generator, gc_tilt)
        return x, l1[:n], z2[:n]


@register("stacked")
class Stacked(Family):
    Config = StackedConfig
    select_by = "val_nll"
    conditional = True  # --gc with --condition gc
    labelled = True
    guided = True

    def build(self, cfg, stats: DataStats) -> nn.ModuleDict:
        c, L = cfg.model, stats.seq_len
        classes = Classes(stats, c)
        nets = {"G": StackedGenerator(c, L, classes.n)}
        if c.adv_weight > 0:  # the discriminators exist only for adversarial training
            nets.update(D1=Discriminator(c, L, classes.n), D2=Discriminator(c, L, classes.n))
        if classes.n:
            nets["classes"] = classes
        return nn.ModuleDict(nets)

    def optimizers(self, nets, cfg):
        out = {"g": (list(nets["G"].parameters()), cfg.train.lr_g)}
        if "D1" in nets:
            out["d"] = (list(nets["D1"].parameters()) + list(nets["D2"].parameters()), cfg.train.lr_d)
        return out

    def _fake(self, G, B, L, ctx, y=None):
        """A generated batch for the discriminators: straight-through one-hots for both stages.

        The final bases are sampled base by base without gradient; one parallel (causal) pass
        over them then gives each position's logits, and the one-hot of the sampled base carries
        the gradient of its softmax (straight-through). y: the classes asked for (the batch's)."""
        x, l1, z2 = G.generate(B, L, ctx.device, ctx.generator, y=y)
        p2 = F.softmax(G.refine(l1, z2, x), -1)
        h2 = F.one_hot(x, 4).float() - p2.detach() + p2
        h1 = gumbel_softmax(l1, tau=ctx.temperature, hard=True, generator=ctx.generator)
        return h1, h2, p2

    def train_step(self, nets, batch, ctx) -> dict[str, float]:
        c = ctx.cfg.model
        G = nets["G"]
        B, L = batch.shape
        out: dict[str, float] = {}
        y = classes_of(nets, batch, ctx.batch_labels)  # the batch's classes (None: unconditional)
        g_adv = c.g_active(ctx.step, ctx.budget_used, ctx.adversarial)
        if c.d_active(ctx.step):
            # One generated batch serves the D update and, afterwards, the G update: sampling the
            # bases one by one is the expensive part of an adversarial step.
            with torch.set_grad_enabled(g_adv):
                h1, h2, p2 = self._fake(G, B, L, ctx, y)

            def refresh():
                with torch.no_grad():
                    return list(self._fake(G, B, L, ctx, y)[:2])

            D1, D2 = nets["D1"], nets["D2"]
            out.update(discriminator_step(ctx, c, F.one_hot(batch, 4).float(),
                                          [lambda v: D1(v, y), lambda v: D2(v, y)], [h1, h2], refresh))
        loss_g = torch.zeros((), device=batch.device)
        if c.mle_weight > 0:
            # The curriculum prototype's loss on teacher-forced predictions: (1-w) CE + w penalty.
            # Classifier-free guidance: some windows train the null class (model.label_drop).
            yd = None if y is None else nets["classes"].dropped(y, c.label_drop, ctx.generator)
            l1, z2 = G.coarse(B, L, batch.device, ctx.generator, yd)
            mle = balanced_loss(G.refine(l1, z2, batch), batch, weight=ctx.balance_weight,
                                target_gc=ctx.target_gc, ref_freq=ctx.ref_freq)
            loss_g = loss_g + c.mle_weight * mle
            out["mle"] = mle.detach()
        if g_adv:
            adv = g_loss(nets["D2"](h2, y), c.loss) + c.stage1_weight * g_loss(nets["D1"](h1, y), c.loss)
            loss_g = loss_g + c.adv_weight * adv
            out["g_adv"] = adv.detach()
        return generator_update(ctx, loss_g, p2 if g_adv else None, c.mle_weight, out)

    def evaluate(self, nets, ctx) -> dict[str, float]:
        """Held-out NLL of Stage II (teacher-forced, with the n-gram table and any refit; each
        window with its own class)."""
        G = nets["G"]
        was = G.training
        G.eval()
        out = heldout_nll(lambda x, g, lab: G.refine(*G.coarse(x.shape[0], x.shape[1], x.device, g,
                                                                classes_of(nets, x, lab)), x),
                          ctx.val, ctx.device, seed=ctx.cfg.train.seed, labels=ctx.val_labels)
        G.train(was)
        return out

    def closing_fit(self, cfg) -> ClosingFit | None:
        """Refit Stage II's n-gram table with the network frozen (models.blocks.refit_context_logits)."""
        def network_logits(nets):
            G = nets["G"]
            return lambda x, g, lab: G.refine(*G.coarse(x.shape[0], x.shape[1], x.device, g,
                                                        classes_of(nets, x, lab)), x) - G.ngram(x)

        return ngram_closing_fit(cfg.model, lambda nets: nets["G"].ngram, network_logits)

    @torch.no_grad()
    def sample(self, nets, n, length, *, temperature=1.0, generator=None, prompt=None, gc=None, label=None,
               guidance=1.0, gc_tilt=0.0):
        G = nets["G"]
        if length > G.max_len:
            raise ConfigError(f"the stacked model was trained on {G.max_len} bp; it cannot generate {length} bp")
        dev = next(G.parameters()).device
        out, rows = [], rows_per_pass(length, 2048)  # wide on a CPU too: token by token (1.27 ms a sequence; 1.45 in CPU-sized passes)
        for s in range(0, n, rows):
            m = min(rows, n - s)
            y = requested(nets, m, dev, generator, label=label, gc=gc)
            out.append(G.generate(m, length, dev, generator, temperature, prompt, y, guidance, gc_tilt)[0])
        return torch.cat(out)
