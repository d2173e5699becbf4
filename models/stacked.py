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

Generator loss = adversarial (D2 on the final sample + stage1_weight * D1 on Stage I's Gumbel sample,
through straight-through one-hots) + mle_weight * teacher-forced cross-entropy of Stage II
+ optional k-mer spectrum matching + the GC-balanced term (train.balance_weight). The adversarial
terms start after model.mle_warmup steps, so the discriminator judges a generator that already
writes DNA-like sequences; the MLE term keeps adversarial updates from destroying that.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import CausalTransformer, ContextLogits, TransformerStack, gumbel_softmax, kmer_probs, sample_categorical, xavier_init
from models.registry import DataStats, Family, register
from train.losses import check_gan_options, balanced_loss, d_loss, g_loss, gradient_penalty
from utils.errors import ConfigError


@dataclass(frozen=True)
class StackedConfig:
    d_model: int = 64  # transformer width (generators and discriminators)
    g_layers: int = 2  # layers per generator stage
    d_layers: int = 2  # layers per discriminator
    n_heads: int = 4
    noise_dim: int = 16  # per-position noise channels (global noise has the same size)
    dropout: float = 0.0
    init_gain: float = 0.1  # Xavier gain of each generator stage's input and output layers
    d_kernel: int = 5  # width of D's convolutional input projection (1 = per-position Linear)
    g_kernel: int = 6  # width of Stage II's causal convolutional input projection (sees k-mers)
    loss: str = "bce"  # bce | wgan-gp | hinge
    d_input: str = "gumbel"  # what D sees of G: gumbel (straight-through one-hots) | soft (softmax)
    gp_weight: float = 10.0  # WGAN-GP gradient penalty weight
    label_smoothing: float = 0.1  # one-sided: real target 1 - s (bce)
    d_steps: int = 1  # discriminator updates per generator update
    minibatch_std: bool = True  # batch-diversity feature in the discriminators
    adv_weight: float = 0.0  # weight of the adversarial terms; 0 = pure maximum likelihood (best measured)
    stage1_weight: float = 0.5  # weight of the Stage I adversarial term within them
    mle_weight: float = 1.0  # teacher-forced cross-entropy of Stage II on real batches
    mle_warmup: int = 500  # generator steps of MLE alone before adversarial terms start
    adv_every: int = 4  # adversarial (D and G) updates on every n-th step; the rest are MLE only
    kmer_weight: float = 0.0  # k-mer spectrum matching (JS, k = 1..kmer_k) on G's output
    kmer_k: int = 4
    ngram_order: int = 0  # Stage II's direct n-gram logits over the previous bases (0 = none); YAML: 5
    ngram_refit: int = 0  # after training, refit the n-gram table on this many training windows (0 = off)
    ngram_refit_prior: float = 1.0  # Gaussian prior (precision) keeping the refit near the trained table
    ngram_refit_tolerance: float = 0.001  # drop the refit if held-out NLL rises more (nats per base)

    def validate(self):
        check_gan_options(self.loss, self.d_steps)
        if self.d_input not in ("gumbel", "soft"):
            raise ConfigError(f"model.d_input must be gumbel or soft, got {self.d_input!r}")
        if self.d_model % self.n_heads:
            raise ConfigError("model.d_model must be a multiple of model.n_heads")
        if not 0 <= self.ngram_order <= 8:
            raise ConfigError("model.ngram_order must be between 0 and 8")
        if self.ngram_refit_tolerance < 0:
            raise ConfigError("model.ngram_refit_tolerance must be >= 0")
        if self.ngram_refit_prior < 0:
            raise ConfigError("model.ngram_refit_prior must be >= 0")
        if self.ngram_refit < 0:
            raise ConfigError("model.ngram_refit must be >= 0 (training windows; 0 = off)")
        if self.kmer_k < 1:
            raise ConfigError("model.kmer_k must be >= 1")


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
            s = f.std(0, unbiased=False).mean() if f.shape[0] > 1 else f.new_zeros(())
            f = torch.cat([f, s.expand(f.shape[0], 1)], 1)
        return self.out(F.leaky_relu(self.hidden(f), 0.2)).squeeze(1)


class StackedGenerator(nn.Module):
    def __init__(self, c: StackedConfig, max_len: int):
        super().__init__()
        self.c, self.max_len = c, max_len
        self.stage1 = TransformerStack(2 * c.noise_dim, c.d_model, c.g_layers, c.n_heads, max_len, c.dropout)
        self.head1 = nn.Linear(c.d_model, 4)
        self.stage2 = CausalTransformer(4 + c.noise_dim + 4, c.d_model, c.g_layers, c.n_heads, max_len,
                                        c.dropout, kernel=c.g_kernel)
        self.head2 = nn.Linear(c.d_model, 4)
        self.ngram = ContextLogits(c.ngram_order) if c.ngram_order else None
        # The prototype's small-gain Xavier init on each stage's input and output layers; inside the
        # transformers PyTorch's init is kept (gain 0.1 there too made G learn nothing, measured).
        for m in (self.stage1.proj, self.head1, self.stage2.proj, self.head2):
            xavier_init(m, gain=c.init_gain)

    def coarse(self, n: int, L: int, device, generator):
        """Stage I logits (n, L, 4) and Stage II's noise (n, L, z)."""
        z = torch.randn(n, L, self.c.noise_dim, device=device, generator=generator)
        zg = torch.randn(n, 1, self.c.noise_dim, device=device, generator=generator).expand(n, L, -1)
        z2 = torch.randn(n, L, self.c.noise_dim, device=device, generator=generator)
        return self.head1(self.stage1(torch.cat([z, zg], -1))), z2

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
    def generate(self, n, L, device, generator, temperature=1.0, prompt=None, l1=None, z2=None):
        """Sample (n, L) bases base by base; a prompt fixes the first bases. Also returns l1, z2."""
        if l1 is None:
            l1, z2 = self.coarse(n, L, device, generator)
        x = torch.zeros(n, L, dtype=torch.long, device=device)
        p = 0 if prompt is None else min(int(prompt.numel()), L)
        if p:
            x[:, :p] = prompt[:p].to(device)
        k = self.stage2.kernel
        inp = self._inputs(l1, z2)  # (n, k-1+L, d_in); position t is row t+k-1
        caches = [{} for _ in self.stage2.blocks]
        for t in range(L):
            if t > 0:  # the base emitted at t-1 is position t's "previous base" input
                inp[:, t + k - 1, -4:] = F.one_hot(x[:, t - 1], 4).float()
            h = self.stage2.step(inp[:, t : t + k], t, caches)
            if t >= p:
                logits = l1[:, t] + self.head2(h[:, 0])
                if self.ngram is not None:
                    logits = logits + self.ngram.step(x, t)
                x[:, t] = sample_categorical(logits, temperature, generator)
        return x, l1, z2


def kmer_js_torch(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Differentiable Jensen-Shannon divergence (bits) of two distributions."""
    m = 0.5 * (p + q)
    eps = 1e-8
    kl = lambda a: (a * (torch.log2(a + eps) - torch.log2(m + eps))).sum()  # noqa: E731
    return 0.5 * kl(p) + 0.5 * kl(q)


@register("stacked")
class Stacked(Family):
    Config = StackedConfig
    autoregressive = True

    def build(self, cfg, stats: DataStats) -> nn.ModuleDict:
        c, L = cfg.model, stats.seq_len
        return nn.ModuleDict({"G": StackedGenerator(c, L), "D1": Discriminator(c, L),
                              "D2": Discriminator(c, L)})

    def param_groups(self, nets):
        return {"g": list(nets["G"].parameters()),
                "d": list(nets["D1"].parameters()) + list(nets["D2"].parameters())}

    def _fake(self, G, B, L, ctx):
        """A generated batch for the discriminators: straight-through one-hots for both stages
        (model.d_input=gumbel) or the stages' softmax distributions (model.d_input=soft).

        The final bases are sampled base by base without gradient; one parallel (causal) pass
        over them then gives each position's logits, and the one-hot of the sampled base carries
        the gradient of its softmax (straight-through)."""
        x, l1, z2 = G.generate(B, L, ctx.device, ctx.generator)
        l2 = G.refine(l1, z2, x)
        p2 = F.softmax(l2, -1)
        if ctx.cfg.model.d_input == "soft":
            return F.softmax(l1 / ctx.temperature, -1), p2, p2
        h2 = F.one_hot(x, 4).float() - p2.detach() + p2
        h1 = gumbel_softmax(l1, tau=ctx.temperature, hard=True, generator=ctx.generator)
        return h1, h2, p2

    def train_step(self, nets, batch, ctx) -> dict[str, float]:
        c = ctx.cfg.model
        G, D1, D2 = nets["G"], nets["D1"], nets["D2"]
        B, L = batch.shape
        real = F.one_hot(batch, 4).float()  # (B, L, 4)
        out: dict[str, float] = {}
        adversarial = (c.adv_weight > 0 and ctx.step >= c.mle_warmup
                       and (ctx.step - c.mle_warmup) % max(1, c.adv_every) == 0)
        if adversarial:
            # One generated batch serves the D update and, afterwards, the G update: sampling 70
            # bases one by one is the expensive part of an adversarial step.
            h1, h2, p2 = self._fake(G, B, L, ctx)
            for i in range(c.d_steps):
                if i == 0:
                    f1, f2 = h1.detach(), h2.detach()
                else:
                    with torch.no_grad():
                        f1, f2, _ = self._fake(G, B, L, ctx)
                r1, r2, o1, o2 = D1(real), D2(real), D1(f1), D2(f2)
                loss_d = (d_loss(r1, o1, c.loss, c.label_smoothing)
                          + d_loss(r2, o2, c.loss, c.label_smoothing))
                if c.loss == "wgan-gp":
                    loss_d = loss_d + c.gp_weight * (gradient_penalty(D1, real, f1, ctx.generator)
                                                     + gradient_penalty(D2, real, f2, ctx.generator))
                ctx.optimize("d", loss_d)
            out["d_loss"] = float(loss_d.detach())
            out["d_acc_real"] = float((r2 > 0).float().mean())
            out["d_acc_fake"] = float((o2 < 0).float().mean())

        loss_g = torch.zeros((), device=batch.device)
        if c.mle_weight > 0:
            # The curriculum prototype's loss on teacher-forced predictions: (1-w) CE + w penalty.
            l1, z2 = G.coarse(B, L, batch.device, ctx.generator)
            l2 = G.refine(l1, z2, batch)
            mle = balanced_loss(l2, batch, weight=ctx.balance_weight, target_gc=ctx.target_gc,
                                ref_freq=ctx.ref_freq)
            loss_g = loss_g + c.mle_weight * mle
            out["mle"] = float(mle.detach())
        if adversarial:
            adv = g_loss(D2(h2), c.loss) + c.stage1_weight * g_loss(D1(h1), c.loss)
            loss_g = loss_g + c.adv_weight * adv
            out["g_adv"] = float(adv.detach())
            if c.kmer_weight > 0:
                km = sum(kmer_js_torch(kmer_probs(h2, k), kmer_probs(real, k)) for k in range(1, c.kmer_k + 1))
                loss_g = loss_g + c.kmer_weight * km
                out["kmer_js"] = float(km.detach())
        return self.generator_update(ctx, loss_g, p2 if adversarial else None, c.mle_weight, out)

    def finish_windows(self, cfg) -> int:
        return cfg.model.ngram_refit if cfg.model.ngram_order else 0

    def finish(self, nets, train_x, ctx) -> dict[str, float]:
        """Refit Stage II's n-gram table to maximum likelihood with the rest of the network frozen.

        With the network's logits fixed, the table is a log-linear (maximum-entropy) model of the
        next base given the previous ``ngram_order`` bases: a convex problem, solved here by L-BFGS
        on ``ngram_refit`` training windows. At its optimum the expected counts of every
        (context, base) pair equal the observed ones, the property that makes a Markov chain match
        the k-mer spectrum; SGD leaves the sparse table short of it (measured: 4-mer JS of 20,000
        samples 0.00036 before the refit, 0.00015 after)."""
        c, G = ctx.cfg.model, nets["G"]
        if not (c.ngram_order and c.ngram_refit) or train_x.shape[0] == 0:
            return {}
        # its own random streams: the training ones (saved for --resume) are left where they were
        rows = torch.randperm(train_x.shape[0], generator=torch.Generator().manual_seed(ctx.cfg.train.seed))
        noise = torch.Generator(device=ctx.device).manual_seed(ctx.cfg.train.seed + 3)
        fit_x = train_x[rows[: c.ngram_refit]].long()
        val_x = ctx.val[:4096].long() if ctx.val is not None and ctx.val.shape[0] else fit_x[:0]
        was_training = G.training
        G.eval()

        def network_logits(x):  # (N, L) -> logits without the table (N*L, 4), table rows (N*L,)
            outs, idx = [], []
            with torch.no_grad():
                for s in range(0, x.shape[0], 2048):
                    xb = x[s : s + 2048].to(ctx.device)
                    l1, z2 = G.coarse(xb.shape[0], xb.shape[1], ctx.device, noise)
                    outs.append((G.refine(l1, z2, xb) - G.ngram(xb)).reshape(-1, 4))
                    idx.append(G.ngram.index(xb).reshape(-1))
            return torch.cat(outs), torch.cat(idx)

        base, idx = network_logits(fit_x)
        y = fit_x.reshape(-1).to(ctx.device)
        W = (G.ngram.table.weight + G.ngram.refit).detach().clone().requires_grad_(True)
        nll = lambda b, i, t, w: F.cross_entropy(b + w[i], t)  # noqa: E731
        W0 = W.detach().clone()
        opt = torch.optim.LBFGS([W], lr=1.0, max_iter=100, history_size=20, line_search_fn="strong_wolfe")

        def closure():  # mean NLL + a Gaussian prior on the change, in units of one token
            opt.zero_grad()
            loss = nll(base, idx, y, W) + 0.5 * c.ngram_refit_prior * (W - W0).pow(2).sum() / y.numel()
            loss.backward()
            return loss

        out = {"refit_windows": float(fit_x.shape[0])}
        if val_x.shape[0]:
            vb, vi = network_logits(val_x)
            vy = val_x.reshape(-1).to(ctx.device)
        with torch.no_grad():
            out["refit_nll_before"] = float(nll(base, idx, y, W))
            if val_x.shape[0]:
                out["refit_val_nll_before"] = float(nll(vb, vi, vy, W))
        opt.step(closure)
        with torch.no_grad():
            out["refit_nll_after"] = float(nll(base, idx, y, W))
            kept = True
            if val_x.shape[0]:
                out["refit_val_nll_after"] = float(nll(vb, vi, vy, W))
                # Too little data for the table (a small genome: lambda's held-out NLL rose 0.03):
                # keep the trained table. On E. coli it moved by 0.0011 or less (docs/benchmarks.md).
                kept = out["refit_val_nll_after"] - out["refit_val_nll_before"] <= c.ngram_refit_tolerance
            out["refit_kept"] = float(kept)
            if kept:
                G.ngram.refit.copy_(W.detach() - G.ngram.table.weight)
        G.train(was_training)
        return out

    def unfinish(self, nets) -> None:
        if nets["G"].ngram is not None:
            nets["G"].ngram.refit.zero_()

    @torch.no_grad()
    def sample(self, nets, n, length, *, temperature=1.0, generator=None, prompt=None):
        G = nets["G"]
        if length > G.max_len:
            raise ConfigError(f"the stacked model was trained on {G.max_len} bp; it cannot generate {length} bp")
        dev = next(G.parameters()).device
        out = [G.generate(min(2048, n - s), length, dev, generator, temperature, prompt)[0]
               for s in range(0, n, 2048)]
        return torch.cat(out)
