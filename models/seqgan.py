"""SeqGAN (Yu et al. 2017): an LSTM policy trained by maximum likelihood, then by REINFORCE with
Monte-Carlo rollout rewards from a CNN discriminator. One module for DNA tokens (categorical head)
and for real-valued sequences (Gaussian head), chosen by the data or model.output.

Policy G    : LSTM (hidden 32 in the prototype) over the previous token (embedding) or value (Linear)
              -> categorical logits over A, C, G, T, or a Gaussian mean and log-variance per step.
              For DNA the logits also get an n-gram table indexed by the previous model.ngram_order
              bases (models.blocks.ContextLogits, as gumbel's), refitted after training.
Rollout     : a copy of G, never touched by an optimiser, that tracks G by exponential moving average
              (theta_roll <- r theta_roll + (1 - r) theta_G, r = model.rollout_update = 0.8).
D           : per-position Linear embedding -> Conv1d for every filter width -> max over time ->
              highway layer -> dropout (keep 0.75) -> logit; L2 (0.2) on the output layer.
Classes     : with labelled DNA or --condition gc (models.condition), a class embedding is added to
              every policy input (the start token's too), so rollouts continue in the row's class,
              and D adds a projection term <embed(class), highway features>.

Phases (engine epochs; SeqGAN.plan): model.pre_epochs of generator MLE, then
model.dis_pre_epochs of discriminator training on fresh samples, then model.total_batch adversarial
rounds (model.rounds_per_epoch to an epoch). Each round: a policy-gradient step on G with rewards
from batched rollouts (its own Adam, model.pg_lr), model.mle_steps teacher-forced MLE steps on real
data (interleaved, as LeakGAN; 0 is the paper), the EMA update of the rollout net, then
model.d_steps discriminator updates on fresh samples. The --skip-* flags drop a phase from the plan.

Rollouts are batched (rollout_rewards): one pass of the rollout net over the sampled batch caches
its state after every prefix; all (prefix, rollout, sequence) continuations then advance together,
each joining when the sampler reaches its prefix, and D scores them in eval mode, sharing each
prefix's convolution windows (score_completions).
bench/rollout_speed.py keeps the per-rollout, per-prefix loop as the reference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import ContextLogits, NgramOptions, gc_bias, ngram_closing_fit, place_prompt
from models.condition import (Classes, ClassEmbedding, ConditionOptions, GuidanceOptions, classes_of, mix,
                              requested, with_null)
from models.registry import ClosingFit, DataStats, Family, register
from train.gan import d_metrics
from train.losses import balanced_loss, rows_per_pass, spread_windows
from train.schedule import Phase, Plan
from utils.config import option
from utils.errors import ConfigError

LOGVAR_MIN, LOGVAR_MAX = -8.0, 4.0
# model.hidden 0: the prototype's 32 units for real values; for DNA the size that met the quality
# target within the 10-minute CPU budget (docs/benchmarks.md)
AUTO_HIDDEN = {"gaussian": 32, "categorical": 256}
# model.rollout_every 0: at most this many rolled-out prefixes per sequence (every prefix at 70 bp, the
# length the default settings were measured at); a rollout round's cost grows with prefixes x length
AUTO_PREFIXES = 69


@dataclass(frozen=True)
class SeqGANConfig(GuidanceOptions, ConditionOptions, NgramOptions):
    output: str = "auto"  # auto (from the data) | categorical (DNA) | gaussian (real values)
    hidden: int = 0  # policy LSTM units; 0 = by data: AUTO_HIDDEN (the prototype's 32 for real values)
    emb: int = 32  # input embedding width (token embedding, or Linear of the previous value)
    layers: int = 1
    pre_epochs: int = 120  # PRE_EPOCH_NUM: generator MLE epochs
    dis_pre_epochs: int = 5  # discriminator pretraining epochs (steps_per_epoch updates each)
    total_batch: int = 200  # TOTAL_BATCH: adversarial rounds
    rounds_per_epoch: int = 10  # adversarial rounds per engine epoch (a monitoring period)
    budget_shares: tuple = option((0.7, 0.05, 0.25), "under --budget: time shares of gen-pretrain, dis-pretrain, adversarial")
    skip_gen_pretrain: bool = option(False, "seqgan: leave out the gen-pretrain phase",
                                     flag=("--skip-gen-pretrain", "--skip_gen_pretrain"))
    skip_dis_pretrain: bool = option(False, "seqgan: leave out the dis-pretrain phase",
                                     flag=("--skip-dis-pretrain", "--skip_dis_pretrain"))
    skip_adversarial: bool = option(False, "seqgan: leave out the adversarial phase",
                                    flag=("--skip-adversarial", "--skip_adversarial"))
    rollout_num: int = 16  # Monte-Carlo rollouts per prefix
    rollout_every: int = option(0, "roll out every n-th prefix (LeakGAN's step_size); 1 = every prefix (the "
                                   "paper); 0 = auto: every ceil((L-1)/69)-th, so 1 up to 70 bp, 8 at 500 bp")
    rollout_update: float = 0.8  # EMA rate: rollout keeps this share of itself each update
    baseline: str = "mean"  # mean (per-position batch mean reward) | none (the paper)
    pg_batch: int = 0  # sequences per policy-gradient step; 0 = train.batch
    pg_lr: float = 1e-4  # Adam learning rate of the policy-gradient steps (their own optimiser)
    mle_steps: int = 0  # teacher-forced MLE steps on real data per adversarial round (0 = the paper)
    d_steps: int = 3  # discriminator updates per adversarial round, each on fresh samples
    d_batch: int = 2048  # sequences per discriminator forward while scoring rollouts (cache-sized chunks)
    d_emb: int = 16  # discriminator input embedding
    d_filter_sizes: tuple = (2, 3, 4, 5, 6, 8, 10, 15, 20)
    d_num_filters: tuple = (32, 32, 32, 32, 32, 32, 32, 32, 32)
    d_keep_prob: float = 0.75  # dropout keep probability (the prototype's DIS_DROPOUT_KEEP_PROB)
    d_l2: float = 0.2  # L2 on D's output layer (DIS_L2_REG_LAMBDA), as tf.nn.l2_loss

    def validate(self):
        super().validate()
        if self.output not in ("auto", "categorical", "gaussian"):
            raise ConfigError(f"model.output must be auto, categorical or gaussian, got {self.output!r}")
        if self.baseline not in ("mean", "none"):
            raise ConfigError(f"model.baseline must be mean or none, got {self.baseline!r}")
        if len(self.d_filter_sizes) != len(self.d_num_filters) or not self.d_filter_sizes:
            raise ConfigError("model.d_filter_sizes and model.d_num_filters need the same, non-zero length")
        if not 0.0 <= self.rollout_update <= 1.0:
            raise ConfigError("model.rollout_update must be in [0, 1]")
        if not 0.0 < self.d_keep_prob <= 1.0:
            raise ConfigError("model.d_keep_prob must be in (0, 1]")
        for k in ("emb", "layers", "rollout_num", "rounds_per_epoch", "d_steps", "d_batch"):
            if getattr(self, k) < 1:
                raise ConfigError(f"model.{k} must be >= 1")
        if self.pg_lr < 0:  # 0: the adversarial phase without its reward (the MLE steps alone), an ablation
            raise ConfigError("model.pg_lr must be >= 0")
        if len(self.budget_shares) != 3 or min(self.budget_shares) < 0 or sum(self.budget_shares) > 1 + 1e-9:
            raise ConfigError("model.budget_shares: three fractions (gen-pretrain, dis-pretrain, adversarial) summing to <= 1")
        for k in ("hidden", "pre_epochs", "dis_pre_epochs", "total_batch", "mle_steps", "pg_batch", "rollout_every"):
            if getattr(self, k) < 0:
                raise ConfigError(f"model.{k} must be >= 0")


def output_kind(c: SeqGANConfig, stats: DataStats) -> str:
    data_kind = "gaussian" if stats.kind == "signal" else "categorical"
    if c.output != "auto" and c.output != data_kind:
        raise ConfigError(f"model.output={c.output} but the data is {'real-valued' if stats.kind == 'signal' else 'DNA'}"
                          f" (use model.output={data_kind} or auto)")
    return data_kind


class Policy(nn.Module):
    """The generator (and its rollout copy): an LSTM stepping over the previous token or value."""

    def __init__(self, c: SeqGANConfig, kind: str, n_classes: int = 0):
        super().__init__()
        self.kind, self.hidden, self.layers = kind, c.hidden or AUTO_HIDDEN[kind], c.layers
        # classes 0..n-1 and the null class n (classifier-free guidance; trained by the MLE steps)
        self.cls = ClassEmbedding(n_classes + 1, c.emb) if n_classes else None
        if kind == "categorical":
            self.embed = nn.Embedding(5, c.emb)  # 0-3 A, C, G, T; 4 = start token
        else:
            self.embed = nn.Linear(1, c.emb)
            self.start = nn.Parameter(torch.zeros(c.emb))
        self.lstm = nn.LSTM(c.emb, self.hidden, c.layers, batch_first=True)
        self.head = nn.Linear(self.hidden, 4 if kind == "categorical" else 2)
        # DNA only: a table of logits indexed by the previous model.ngram_order bases, added to the
        # LSTM's (models.blocks.ContextLogits, as gumbel and stacked); refitted after training
        self.ngram = ContextLogits(c.ngram_order) if kind == "categorical" and c.ngram_order else None

    # ---- inputs, heads, sampling
    def inputs(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) tokens/values [, (B,) classes] -> (B, T, emb) LSTM inputs."""
        if self.kind == "categorical":
            return self._with_class(self.embed(x.long()), y)
        return self.embed(x.float().unsqueeze(-1))

    def start_input(self, B: int, device, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.kind == "categorical":
            return self._with_class(self.embed(torch.full((B, 1), 4, dtype=torch.long, device=device)), y)
        return self.start.expand(B, 1, -1)

    def _with_class(self, inp: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.cls is None:
            return inp
        if y is None:
            raise ValueError("a conditional policy needs classes")
        return inp + self.cls(y).unsqueeze(1)

    def params_of(self, h: torch.Tensor) -> torch.Tensor:
        """LSTM outputs -> head parameters: logits (..., 4) or (mean, log-variance) (..., 2)."""
        p = self.head(h)
        if self.kind == "gaussian":
            p = torch.stack([p[..., 0], p[..., 1].clamp(LOGVAR_MIN, LOGVAR_MAX)], -1)
        return p

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log pi(x_t | prefix) per position: (B, L)."""
        if self.kind == "categorical":
            return torch.log_softmax(params, -1).gather(-1, x.long().unsqueeze(-1)).squeeze(-1)
        mu, lv = params[..., 0], params[..., 1]
        return -0.5 * (lv + (x.float() - mu) ** 2 / lv.exp() + math.log(2 * math.pi))

    def draw(self, params: torch.Tensor, generator, temperature: float = 1.0, gc_tilt: float = 0.0) -> torch.Tensor:
        """One sample per row of head parameters (reparameterised for the Gaussian head); gc_tilt:
        models.blocks.gc_bias on the DNA logits."""
        if self.kind == "categorical":
            # inverse CDF: one uniform per row (the Gumbel-max trick draws four and takes two logs)
            z = params / max(temperature, 1e-6)
            cdf = torch.softmax(z + gc_bias(gc_tilt, z.device) if gc_tilt else z, -1).cumsum(-1)
            u = torch.rand(cdf.shape[:-1] + (1,), device=cdf.device, generator=generator)
            return (u > cdf[..., :-1]).sum(-1)
        mu, lv = params[..., 0], params[..., 1]
        eps = torch.randn(mu.shape, device=mu.device, generator=generator)
        return mu + math.sqrt(temperature) * (0.5 * lv).exp() * eps

    # ---- running the LSTM
    def step(self, inp: torch.Tensor, state):
        """One LSTM step: (B, 1, emb) input -> head parameters (B, P) for the next position, state.
        Without the n-gram table: a sampler adds ``table(seqs, t)`` once it knows the bases."""
        h, state = self.lstm(inp, state)
        return self.params_of(h[:, 0]), state

    def table(self, params: torch.Tensor, seqs: torch.Tensor, t: int) -> torch.Tensor:
        """Head parameters (B, P) of position t plus the n-gram table's logits, given the rows' bases
        seqs[:, :t] (unchanged without a table)."""
        return params if self.ngram is None else params + self.ngram.step(seqs, t)

    def network_logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced head parameters (B, L, P) of the LSTM alone: position t reads x_{t-1}
        (the start token at 0); y: the rows' classes (conditional policy)."""
        B = x.shape[0]
        inp = torch.cat([self.start_input(B, x.device, y), self.inputs(x[:, :-1], y)], 1)
        h, _ = self.lstm(inp)
        return self.params_of(h)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced head parameters (B, L, P), the n-gram table's included."""
        p = self.network_logits(x, y)
        return p if self.ngram is None else p + self.ngram(x.long())

    def mle_loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Negative log-likelihood per position (nats), averaged."""
        return -self.log_prob(self(x, y), x).mean()

    @torch.no_grad()
    def generate(self, n: int, L: int, generator, temperature: float = 1.0, prompt=None, y=None,
                 gc_tilt: float = 0.0, guidance: float = 1.0) -> torch.Tensor:
        """(n, L) tokens or values; a prompt fixes the first ones. guidance != 1 (classifier-free, a
        conditional DNA policy): the null class runs beside each row on the same bases, and each base
        is drawn from null + guidance * (cond - null) LSTM logits (the n-gram table after)."""
        dev = self.head.weight.device
        out = torch.zeros(n, L, device=dev, dtype=torch.long if self.kind == "categorical" else torch.float32)
        p = place_prompt(out, prompt)
        guided = self.cls is not None and y is not None and guidance != 1.0
        rows = 2 if guided else 1
        if guided:
            self.cls.check_null()
            y = with_null(y.to(dev), self.cls)
        inp, state = self.start_input(rows * n, dev, y), None
        for t in range(L):
            params, state = self.step(inp, state)
            if t >= p:
                if guided:
                    params = mix(params[:n], params[n:], guidance)
                out[:, t] = self.draw(self.table(params, out, t), generator, temperature, gc_tilt)
            inp = self.inputs(out[:, t : t + 1].repeat(rows, 1), y)
        return out


class Highway(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.h, self.t = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x):
        t = torch.sigmoid(self.t(x))
        return t * F.relu(self.h(x)) + (1 - t) * x


class Discriminator(nn.Module):
    """SeqGAN's CNN: filters of several widths, max over time, highway, dropout, one logit."""

    def __init__(self, c: SeqGANConfig, kind: str, seq_len: int, n_classes: int = 0):
        super().__init__()
        self.kind = kind
        self.embed = nn.Linear(4 if kind == "categorical" else 1, c.d_emb)
        # a filter wider than the sequence cannot slide; such widths are dropped
        pairs = [(int(k), int(f)) for k, f in zip(c.d_filter_sizes, c.d_num_filters) if int(k) <= seq_len]
        if not pairs:
            raise ConfigError(f"model.d_filter_sizes: none fits sequences of {seq_len}")
        self.convs = nn.ModuleList(nn.Conv1d(c.d_emb, f, k) for k, f in pairs)
        d = sum(f for _, f in pairs)
        self.highway = Highway(d)
        self.drop = nn.Dropout(1.0 - c.d_keep_prob)
        self.out = nn.Linear(d, 1)
        self.proj = nn.Embedding(n_classes, d) if n_classes else None  # projection discriminator

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L) tokens or values -> (B, C, L) convolution inputs: one-hot bases (C = 4), or the
        embedded values (C = d_emb)."""
        if self.kind == "categorical":
            return F.one_hot(x.long(), 4).float().transpose(1, 2).contiguous()
        return self.embed(x.float().unsqueeze(-1)).transpose(1, 2).contiguous()

    def kernels(self) -> list:
        """(weight, bias, width) per convolution, applied to inputs(). For DNA the embedding is folded
        in: embedding then convolution are both linear, so W'[f, base, k] = sum_e W[f, e, k] E[e, base]
        on one-hot bases is the same function with 4 input channels instead of d_emb (4x fewer flops
        while scoring rollouts)."""
        if self.kind == "categorical":
            E, eb = self.embed.weight, self.embed.bias
            return [(torch.einsum("fek,ec->fck", conv.weight, E), conv.bias + torch.einsum("fek,e->f", conv.weight, eb),
                     conv.kernel_size[0]) for conv in self.convs]
        return [(conv.weight, conv.bias, conv.kernel_size[0]) for conv in self.convs]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Max-over-time feature per filter (B, sum of filters)."""
        inp = self.inputs(x)
        return torch.cat([F.relu(F.conv1d(inp, w, b)).amax(-1) for w, b, _ in self.kernels()], 1)

    def head(self, feats: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.drop(self.highway(feats))
        logit = self.out(h).squeeze(-1)
        if self.proj is not None and y is not None:
            logit = logit + (self.proj(y) * h).sum(1) / h.shape[1] ** 0.5
        return logit

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) tokens or values [, (B,) classes] -> (B,) logits."""
        return self.head(self.features(x), y)

    def l2(self) -> torch.Tensor:
        """tf.nn.l2_loss of the output layer (weights and bias): sum of squares / 2."""
        return 0.5 * (self.out.weight.pow(2).sum() + self.out.bias.pow(2).sum())


@torch.no_grad()
def ema_update(rollout: nn.Module, G: nn.Module, rate: float) -> None:
    """theta_roll <- rate * theta_roll + (1 - rate) * theta_G (buffers copied)."""
    for pr, pg in zip(rollout.parameters(), G.parameters()):
        pr.mul_(rate).add_(pg.detach().to(pr.device), alpha=1.0 - rate)
    for br, bg in zip(rollout.buffers(), G.buffers()):
        br.copy_(bg)


@torch.no_grad()
def score(D: nn.Module, x: torch.Tensor, chunk: int, y: torch.Tensor | None = None) -> torch.Tensor:
    """P(real) for every row of x (of classes y), in chunks, with D in eval mode (no dropout); D's
    mode restored."""
    was = D.training
    D.eval()
    try:
        return torch.cat([torch.sigmoid(D(x[i : i + chunk], None if y is None else y[i : i + chunk]))
                          for i in range(0, x.shape[0], chunk)])
    finally:
        D.train(was)


@torch.no_grad()
def rollout_prefixes(L: int, every: int) -> list[int]:
    """The prefix lengths rolled out for sequences of length L: every ``every``-th (1: all of
    1..L-1, the paper; 0: auto, every ceil((L - 1) / AUTO_PREFIXES)-th, which is 1 up to 70 bp)."""
    every = every or max(1, math.ceil((L - 1) / AUTO_PREFIXES))
    return list(range(every, L, every))


def rollout_rewards(policy: Policy, D: nn.Module, x: torch.Tensor, rollout_num: int, *,
                    generator=None, d_batch: int = 2048, y: torch.Tensor | None = None,
                    every: int = 1) -> torch.Tensor:
    """Monte-Carlo rewards (B, L) in [0, 1]: reward[b, t] is the mean over rollout_num completions of
    x[b, :p] (sampled by ``policy``) of D's P(real), p the first rolled-out prefix length >= t + 1
    (rollout_prefixes(L, every); with every = 1, p = t + 1 as in the paper; a stride as LeakGAN's
    step_size makes length affordable); tokens past the last rolled-out prefix get x's own score.

    Batched: one pass over x caches the policy's state after each rolled-out prefix; the rows
    (prefix, r, b), in that memory order, then advance together, the rows of prefix p joining at
    position p. y: the rows' classes (a conditional policy and D); each completion keeps its row's class.
    """
    B, L = x.shape
    R = rollout_num
    dev = x.device
    full = score(D, x, d_batch, y).reshape(B, 1)
    P = rollout_prefixes(L, every)
    if not P:
        return full.expand(B, L).contiguous()
    # state and next-position head parameters after consuming x[:, :p], p in P
    cache, wanted = [], set(P)
    inp, state = policy.start_input(B, dev, y), None
    _, state = policy.step(inp, state)  # consumes the start token
    for t in range(1, P[-1] + 1):
        params, state = policy.step(policy.inputs(x[:, t - 1 : t], y), state)  # consumed x[:, t-1]
        if t in wanted:
            cache.append((params, state))
    RB = R * B
    J = len(P)
    N = J * RB
    y_rows = None if y is None else y.repeat(J * R)  # row (j, r, b) has class y[b]
    seqs = x.unsqueeze(0).expand(J * R, B, L).reshape(N, L).clone()
    h = torch.zeros(policy.layers, N, policy.hidden, device=dev)
    c = torch.zeros_like(h)
    joined = 0  # prefixes whose rows have joined (they sample every position from their own on)
    for s in range(P[0], L):
        old = joined * RB  # rows of prefixes p < s, which drew their own token s-1
        params_old = None
        if old:
            params_old, (h_o, c_o) = policy.step(policy.inputs(seqs[:old, s - 1 : s],
                                                               None if y_rows is None else y_rows[:old]),
                                                 (h[:, :old].contiguous(), c[:, :old].contiguous()))
            h[:, :old], c[:, :old] = h_o, c_o
        params = params_old
        if joined < J and P[joined] == s:  # the rows of prefix p = s start from the cached state
            p_new, (h_n, c_n) = cache[joined]
            h[:, old : old + RB] = h_n.repeat(1, R, 1)
            c[:, old : old + RB] = c_n.repeat(1, R, 1)
            p_new = p_new.repeat(R, 1)
            params = p_new if params_old is None else torch.cat([params_old, p_new])
            joined += 1
        n = joined * RB
        seqs[:n, s] = policy.draw(policy.table(params, seqs[:n], s), generator).to(seqs.dtype)
    r = score_completions(D, x, seqs, R, y, P).reshape(J, R, B).mean(1).transpose(0, 1)  # (B, J)
    # token t's reward: the first rolled-out prefix that holds it, else the whole sequence's score
    col = torch.searchsorted(torch.tensor(P, device=dev), torch.arange(1, L + 1, device=dev))
    return torch.cat([r, full], 1)[:, col]


@torch.no_grad()
def score_completions(D: Discriminator, x: torch.Tensor, seqs: torch.Tensor, R: int,
                      y: torch.Tensor | None = None, prefixes: list[int] | None = None) -> torch.Tensor:
    """score(D, seqs) for rollout completions in (prefix, r, b) order (prefix lengths ``prefixes``,
    default 1..L-1), sharing the prefix: for the rows of prefix t, a width-k window at p <= t - k
    lies inside x[b, :t], so its part of the max over time is a running max of x's own convolution;
    only windows p > t - k are computed per row."""
    was = D.training
    D.eval()
    try:
        B, L = x.shape
        RB = R * B
        kern = D.kernels()
        inp_x = D.inputs(x)
        prefix_max = [F.conv1d(inp_x, w, b).cummax(-1).values for w, b, _ in kern]  # (B, F, L-k+1)
        y_t = None if y is None else y.repeat(R)  # the classes of one prefix's (r, b) rows
        out = []
        for j, t in enumerate(prefixes or range(1, L)):
            inp = D.inputs(seqs[j * RB : (j + 1) * RB])
            feats = []
            for (w, b, k), pm in zip(kern, prefix_max):
                s0 = max(0, t - k + 1)  # first window that reaches a sampled position
                m = F.conv1d(inp[:, :, s0:], w, b).amax(-1)
                if s0 > 0:
                    m = torch.maximum(m, pm[:, :, s0 - 1].repeat(R, 1))
                feats.append(F.relu(m))
            out.append(torch.sigmoid(D.head(torch.cat(feats, 1), y_t)))
        return torch.cat(out)
    finally:
        D.train(was)


@register("seqgan")
class SeqGAN(Family):
    Config = SeqGANConfig
    data_kinds = ("dna", "signal")  # the Gaussian head models real-valued sequences
    select_by = "val_nll"
    conditional = True  # --gc with --condition gc
    labelled = True
    guided = True  # --guidance with classes (the null class trains in the MLE steps)
    adversarial_phase = "adversarial"

    def build(self, cfg, stats: DataStats) -> nn.ModuleDict:
        c = cfg.model
        kind = output_kind(c, stats)
        classes = Classes(stats, c)
        if classes.n and kind != "categorical":
            raise ConfigError("seqgan: classes (labels, --condition gc) apply to DNA, not real-valued sequences")
        G = Policy(c, kind, classes.n)
        rollout = Policy(c, kind, classes.n)
        rollout.load_state_dict(G.state_dict())
        rollout.requires_grad_(False)
        nets = {"G": G, "rollout": rollout, "D": Discriminator(c, kind, stats.seq_len, classes.n)}
        if classes.n:
            nets["classes"] = classes
        return nn.ModuleDict(nets)

    def optimizers(self, nets, cfg):
        # the rollout net is in no group: only the EMA moves it. G has two optimisers: "g" for its
        # MLE steps (train.lr_g) and "pg" for policy-gradient steps (model.pg_lr), each with its own
        # Adam moments, so the noisy REINFORCE gradients do not share MLE's step size.
        g = list(nets["G"].parameters())
        return {"g": (g, cfg.train.lr_g), "pg": (g, cfg.model.pg_lr), "d": (list(nets["D"].parameters()), cfg.train.lr_d)}

    def plan(self, cfg) -> Plan:
        """MLE epochs, D-pretraining epochs, then the adversarial rounds (rounds_per_epoch steps an
        epoch; a last shorter epoch takes the remainder). The --skip-* flags drop a phase."""
        c, out = cfg.model, []
        gen, dis, adv = c.budget_shares
        if not c.skip_gen_pretrain and c.pre_epochs:
            out.append(Phase("gen_pretrain", c.pre_epochs, share=gen))
        if not c.skip_dis_pretrain and c.dis_pre_epochs:
            out.append(Phase("dis_pretrain", c.dis_pre_epochs, share=dis))
        if not c.skip_adversarial and c.total_batch:
            full, rest = divmod(c.total_batch, c.rounds_per_epoch)
            if full:
                out.append(Phase("adversarial", full, c.rounds_per_epoch, share=adv))
            if rest:
                out.append(Phase("adversarial", 1, rest))
        return Plan(tuple(out)) if out else Plan.single(cfg.train.epochs, "gen_pretrain")

    # ---- steps
    def _d_step(self, nets, real, labels, ctx) -> dict:
        """One D update on real windows (with their data labels) against as many fresh samples of
        the same classes."""
        G, D = nets["G"], nets["D"]
        c = ctx.cfg.model
        y = classes_of(nets, real, labels)
        fake = G.generate(real.shape[0], real.shape[1], ctx.generator, y=y)
        r, f = D(real, y), D(fake, y)
        loss = (F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
                + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))) / 2 + c.d_l2 * D.l2()
        ctx.optimize("d", loss)
        return d_metrics(r, f, loss)

    def _real(self, ctx, n: int) -> tuple:
        """n random training windows and their labels (None without)."""
        src, lab = ctx.train, ctx.train_labels
        idx = torch.randint(0, src.shape[0], (n,), generator=ctx.generator, device=ctx.generator.device)
        x = src[idx.to(src.device), : ctx.length].to(ctx.device)
        return x, (None if lab is None else lab[idx.to(lab.device)].to(ctx.device))

    def pg_step(self, nets, ctx, B: int, L: int) -> dict:
        """One REINFORCE step: sample B sequences, score every prefix by rollouts, ascend
        sum_t (reward_t - baseline_t) log pi(x_t | x_<t)."""
        c = ctx.cfg.model
        G, rollout, D = nets["G"], nets["rollout"], nets["D"]
        y = None  # a conditional policy samples classes as generation does (training frequencies)
        if "classes" in nets:
            y = nets["classes"].for_sampling(B, ctx.device, ctx.generator)
        x = G.generate(B, L, ctx.generator, y=y)
        rewards = rollout_rewards(rollout, D, x, c.rollout_num, generator=ctx.generator, d_batch=c.d_batch, y=y,
                                  every=c.rollout_every)
        adv = rewards - rewards.mean(0, keepdim=True) if c.baseline == "mean" else rewards
        logp = G.log_prob(G(x, y), x)
        loss = -(logp * adv).sum(1).mean() / L
        ctx.optimize("pg", loss)
        return {"pg_loss": loss.detach(), "reward": rewards.detach().mean(),
                "reward_final": rewards.detach()[:, -1].mean()}

    def mle(self, nets, x: torch.Tensor, labels, ctx) -> torch.Tensor:
        """Teacher-forced NLL; for DNA with the GC-balanced term (train.balance_weight, or
        --target_gc), as every family's likelihood step."""
        G, y = nets["G"], classes_of(nets, x, labels)
        if y is not None:  # classifier-free guidance: some windows train the null class (model.label_drop)
            y = nets["classes"].dropped(y, ctx.cfg.model.label_drop, ctx.generator)
        if G.kind != "categorical" or ctx.balance_weight <= 0:
            return G.mle_loss(x, y)
        return balanced_loss(G(x, y), x, weight=ctx.balance_weight, target_gc=ctx.target_gc, ref_freq=ctx.ref_freq)

    def train_step(self, nets, batch, ctx) -> dict[str, float]:
        c = ctx.cfg.model
        G = nets["G"]
        own = (batch, ctx.batch_labels)
        if ctx.phase == "gen_pretrain":
            loss = self.mle(nets, *own, ctx)
            ctx.optimize("g", loss)
            return {"mle": loss.detach()}
        if ctx.phase == "dis_pretrain":
            return self._d_step(nets, *own, ctx)
        out = self.pg_step(nets, ctx, c.pg_batch or batch.shape[0], batch.shape[1])
        for i in range(c.mle_steps):
            loss = self.mle(nets, *(own if i == 0 else self._real(ctx, batch.shape[0])), ctx)
            ctx.optimize("g", loss)
            out["mle"] = loss.detach()
        ema_update(nets["rollout"], G, c.rollout_update)  # after this round's generator updates
        for i in range(c.d_steps):
            d = self._d_step(nets, *(own if i == 0 else self._real(ctx, batch.shape[0])), ctx)
        out.update(d)
        return out

    def on_epoch_start(self, nets, ctx) -> None:
        # entering the adversarial phase: the rollout net starts as an exact copy of G
        if ctx.phase == "adversarial" and ctx.phase_start:
            nets["rollout"].load_state_dict(nets["G"].state_dict())

    @torch.no_grad()
    def evaluate(self, nets, ctx) -> dict[str, float]:
        """Held-out NLL of the policy (nats per position) on up to 2,000 validation windows spread
        over every held-out block, at their full length whatever the curriculum's length this epoch,
        as the other families: the figure that picks seqgan_best.pt then compares epochs on the
        length that is generated. (Until stop 23 it read the first 2,000 windows cut to the epoch's
        length, so a 200 bp epoch's NLL was set against a 500 bp epoch's.)"""
        if ctx.val is None or not ctx.val.shape[0]:
            return {}
        G = nets["G"]
        was = G.training
        G.eval()
        val, labels = spread_windows(ctx.val, ctx.val_labels, 2000)
        total, batch = 0.0, rows_per_pass(val.shape[1], 512, ctx.device)
        for s in range(0, val.shape[0], batch):
            x = val[s : s + batch].to(ctx.device)
            lab = None if labels is None else labels[s : s + batch].to(ctx.device)
            total += float(G.mle_loss(x, classes_of(nets, x, lab))) * x.shape[0]
        G.train(was)
        return {"val_nll": total / val.shape[0], "val_passes": val.shape[0]}

    def closing_fit(self, cfg) -> ClosingFit | None:
        """Refit the DNA policy's n-gram table with the LSTM frozen (models.blocks.refit_context_logits);
        nothing for real-valued sequences, whose policy has no table."""
        return ngram_closing_fit(cfg.model, lambda nets: nets["G"].ngram,
                                 lambda nets: (lambda x, g, lab: nets["G"].network_logits(x, classes_of(nets, x, lab))))

    @torch.no_grad()
    def sample(self, nets, n, length, *, temperature=1.0, generator=None, prompt=None, gc=None, label=None,
               gc_tilt=0.0, guidance=1.0):
        G = nets["G"]
        out = []
        for s in range(0, n, 4096):
            m = min(4096, n - s)
            y = requested(nets, m, G.head.weight.device, generator, label=label, gc=gc)
            out.append(G.generate(m, length, generator, temperature, prompt, y, gc_tilt, guidance))
        return torch.cat(out)

    def artifacts(self, ensemble, run_dir, sample, epoch) -> list:
        """The prototype's files: eval_file.txt (each epoch's evaluation sample), generator_sample.txt
        (negatives as D sees them), and final_samples.txt (in the run and beside --output) at the end."""
        from pathlib import Path

        from utils.sequences import write_samples

        tc, L = ensemble.cfg.train, ensemble.stats.seq_len
        if epoch is not None:
            g = torch.Generator(device=ensemble.device).manual_seed(epoch)
            neg = ensemble.family.sample(ensemble.members[0], tc.batch * 4, L, generator=g)
            return [write_samples(run_dir / "eval_file.txt", sample), write_samples(run_dir / "generator_sample.txt", neg)]
        x = ensemble.sample(max(ensemble.cfg.gen.n, 1000), L, seed=tc.seed + 1)
        return [write_samples(run_dir / "final_samples.txt", x),
                write_samples(Path(ensemble.cfg.gen.output).parent / "final_samples.txt", x)]
