"""Shared layers: pre-norm transformer stacks, Gumbel-softmax with an explicit generator, init."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from train.losses import rows_per_pass
from utils.config import option
from utils.errors import ConfigError


def xavier_init(module: nn.Module, gain: float = 0.1) -> None:
    """Xavier-uniform (small gain) on every Linear weight, zeros on biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class TransformerStack(nn.Module):
    """Input projection + LayerNorm + learned positions -> pre-norm encoder -> LayerNorm.

    rel_pos: the encoder's blocks also add a learned attention bias per head and lag (RelativeBias);
    rope: they rotate queries and keys by position instead (Rotary). With either, the blocks are this
    module's own (AttentionBlock, not causal) instead of PyTorch's encoder layers."""

    def __init__(self, d_in: int, d_model: int, n_layers: int, n_heads: int, max_len: int,
                 dropout: float = 0.0, ff_mult: int = 4, kernel: int = 1, attn_dropout: float | None = None,
                 rel_pos: bool = False, rope: bool = False):
        super().__init__()
        # kernel > 1: the input projection is a 1-D convolution, so the first layer already sees
        # k-mers (a per-position Linear when kernel = 1).
        self.kernel = kernel
        self.proj = nn.Linear(d_in, d_model) if kernel == 1 else nn.Conv1d(d_in, d_model, kernel, padding=kernel // 2)
        self.norm_in = nn.LayerNorm(d_model)
        self.pos = nn.Parameter(torch.zeros(1, max_len, d_model))
        nn.init.normal_(self.pos, std=0.02)
        # attn_dropout (None: dropout) drops attention weights. Above 0 PyTorch can only train with its
        # plain attention kernel, which holds every (L x L) score map: at 500 bp 7x the time and 4x
        # the memory of the fused kernel, and at 1,000 bp out of 24 GB (docs/benchmarks.md).
        attn_dropout = dropout if attn_dropout is None else attn_dropout
        if rel_pos or rope:
            self.blocks = nn.ModuleList(AttentionBlock(d_model, n_heads, dropout, ff_mult, rel_len=max_len if rel_pos else 0,
                                                    causal=False, attn_dropout=attn_dropout, rope=rope)
                                        for _ in range(n_layers))
            self.encoder = None
        else:
            layer = nn.TransformerEncoderLayer(d_model, n_heads, ff_mult * d_model, dropout,
                                               batch_first=True, norm_first=True, activation="gelu")
            layer.self_attn.dropout = attn_dropout
            self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm_out = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, d_in) -> (B, L, d_model); ``add`` (B, d_model), e.g. a class embedding, joins every
        position's input beside its position embedding."""
        h = self.proj(x) if self.kernel == 1 else self.proj(x.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2)
        h = self.norm_in(h) + self.pos[:, : x.shape[1]]
        if add is not None:
            h = h + add.unsqueeze(1)
        if self.encoder is not None:
            return self.norm_out(self.encoder(h))
        for blk in self.blocks:
            h = blk(h)
        return self.norm_out(h)


class RelativeBias(nn.Module):
    """A learned attention bias per head and per lag (query position - key position), one value for
    every lag up to the model's length, added to the attention scores (Shaw et al. 2018; T5's bias
    without buckets). Zero-initialised. A head can then weigh keys by their distance alone, e.g.
    every third base, which is how a reading frame shows: with learned absolute positions alone the
    same pattern has to be learned once per position pair."""

    def __init__(self, n_heads: int, max_len: int, causal: bool):
        super().__init__()
        self.max_len, self.causal = max_len, causal
        self.table = nn.Parameter(torch.zeros(n_heads, max_len if causal else 2 * max_len - 1))

    def forward(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        """1-D query and key positions -> (1, heads, Tq, Tk) additive scores (-inf on future keys
        when causal)."""
        lag = q_pos[:, None] - k_pos[None, :]
        if not self.causal:
            return self.table[:, lag + self.max_len - 1].unsqueeze(0)
        bias = self.table[:, lag.clamp(min=0)]
        return bias.masked_fill(lag < 0, float("-inf")).unsqueeze(0)


@dataclass(frozen=True)
class PositionOptions:
    """Config fields of a transformer family whose attention can read relative positions (masked,
    stacked's Stage II): two ways to them, at most one at a time."""

    rel_pos: bool = option(False, "attention adds a learned bias per head and lag (relative positions)")
    rope: bool = option(False, "rotary queries and keys instead (relative positions, fused attention kernel kept)")

    def validate(self):
        parent = getattr(super(), "validate", None)
        if parent:
            parent()
        if self.rel_pos and self.rope:
            raise ConfigError("model.rel_pos and model.rope are two ways to relative positions: set one of them "
                              "(e.g. --set model.rel_pos=true --set model.rope=false)")


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021, RoFormer): each query and key is rotated, pair of
    channels by pair, by an angle proportional to its position, so a score q_i . k_j depends on the
    positions only through i - j. Relative positions without an additive bias: PyTorch's fused
    attention kernel still applies in training (a learned bias needs its gradient, which only the
    plain kernel gives; 500 bp, batch 128: 0.91 s against 0.19 s per attention call, forward and
    backward).

    Frequencies (fixed): the first pair turns 2 pi / 3 per base, so a head can score keys by their
    codon phase (lag mod 3); the second 2 pi / 10.5, the turn of the double helix; the others the
    usual ladder 10000^(-i / n) from 1 radian per base down. Channels split in halves (GPT-NeoX's
    layout): channel c pairs with channel c + d/2."""

    def __init__(self, head_dim: int):
        super().__init__()
        if head_dim % 2:
            raise ConfigError(f"rotary positions need an even head width (d_model / n_heads), got {head_dim}")
        n = head_dim // 2
        special = [2 * torch.pi / 3, 2 * torch.pi / 10.5][: max(0, n - 1)]
        rest = n - len(special)
        ladder = [10000.0 ** (-i / rest) for i in range(rest)]
        self.register_buffer("freq", torch.tensor(special + ladder, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """x (B, h, T, head_dim) at positions start..start+T-1 -> rotated, same shape."""
        pos = torch.arange(start, start + x.shape[-2], device=x.device, dtype=torch.float32)
        ang = pos[:, None] * self.freq[None, :]  # (T, n)
        cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
        a, b = x.chunk(2, -1)
        return torch.cat([a * cos - b * sin, b * cos + a * sin], -1)


class AttentionBlock(nn.Module):
    """Pre-norm transformer block with self-attention, causal unless ``causal`` is False, an
    optional key/value cache (causal decoding) and optional relative positions: a learned bias per
    head and lag (``rel_len``) or rotary queries and keys (``rope``)."""

    def __init__(self, d: int, n_heads: int, dropout: float = 0.0, ff_mult: int = 4, rel_len: int = 0,
                 causal: bool = True, attn_dropout: float = 0.0, rope: bool = False):
        super().__init__()
        self.h, self.causal, self.attn_dropout = n_heads, causal, attn_dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, ff_mult * d), nn.GELU(), nn.Linear(ff_mult * d, d))
        self.drop = nn.Dropout(dropout)
        self.rel = RelativeBias(n_heads, rel_len, causal) if rel_len else None
        self.rope = Rotary(d // n_heads) if rope else None

    def attend(self, x, cache: dict | None, start: int = 0):
        """x (B, T, d) at positions start..start+T-1 (start > 0 only when decoding with a cache)."""
        B, T, d = x.shape
        q, k, v = (t.reshape(B, T, self.h, d // self.h).transpose(1, 2) for t in self.qkv(x).split(d, -1))
        if self.rope is not None:  # keys are cached rotated, by their own positions
            q, k = self.rope(q, start), self.rope(k, start)
        if cache is not None:  # incremental decoding: one new position attends to all cached ones
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        p = self.attn_dropout if self.training else 0.0
        if self.rel is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=self.causal and T > 1)  # (B, h, T, d/h)
        else:
            pos = torch.arange(k.shape[2], device=x.device)
            bias = self.rel(pos[start : start + T] if cache is not None else pos, pos).to(q.dtype)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)
        return self.out(y.transpose(1, 2).reshape(B, T, d))

    def forward(self, x, cache: dict | None = None, start: int = 0):
        x = x + self.drop(self.attend(self.ln1(x), cache, start))
        return x + self.drop(self.mlp(self.ln2(x)))


class CausalTransformer(nn.Module):
    """Causal conv projection (position t sees inputs t-kernel+1..t) + LayerNorm + learned positions
    -> causal pre-norm blocks -> LayerNorm. ``step`` decodes one position with cached keys/values,
    giving the same result as the full pass (tested)."""

    def __init__(self, d_in: int, d_model: int, n_layers: int, n_heads: int, max_len: int,
                 dropout: float = 0.0, kernel: int = 1, rel_pos: bool = False, rope: bool = False):
        super().__init__()
        self.kernel = kernel
        self.proj = nn.Conv1d(d_in, d_model, kernel)
        self.norm_in = nn.LayerNorm(d_model)
        self.pos = nn.Parameter(torch.zeros(1, max_len, d_model))
        nn.init.normal_(self.pos, std=0.02)
        rel = max_len if rel_pos else 0
        self.blocks = nn.ModuleList(AttentionBlock(d_model, n_heads, dropout, rel_len=rel, rope=rope)
                                    for _ in range(n_layers))
        self.norm_out = nn.LayerNorm(d_model)

    def forward(self, x):  # (B, L, d_in) -> (B, L, d_model)
        h = self.proj(F.pad(x.transpose(1, 2), (self.kernel - 1, 0))).transpose(1, 2)
        h = self.norm_in(h) + self.pos[:, : x.shape[1]]
        for blk in self.blocks:
            h = blk(h)
        return self.norm_out(h)

    def step(self, window, t: int, caches: list) -> torch.Tensor:
        """window (B, kernel, d_in): the inputs at positions t-kernel+1..t (zeros before 0)."""
        h = self.proj(window.transpose(1, 2)).transpose(1, 2)  # (B, 1, d)
        h = self.norm_in(h) + self.pos[:, t : t + 1]
        for blk, cache in zip(self.blocks, caches):
            h = blk(h, cache, t)
        return self.norm_out(h)


def gumbel_softmax(logits: torch.Tensor, tau: float = 1.0, hard: bool = True,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Gumbel-softmax over the last dim; hard=True gives straight-through one-hots (forward one-hot,
    backward the soft gradient). Noise comes from ``generator`` for reproducibility."""
    u = torch.rand(logits.shape, device=logits.device, generator=generator).clamp_(1e-10, 1 - 1e-10)
    y = F.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1)
    if not hard:
        return y
    idx = y.argmax(-1, keepdim=True)
    return torch.zeros_like(y).scatter_(-1, idx, 1.0) - y.detach() + y


def sample_categorical(logits: torch.Tensor, temperature: float = 1.0,
                       generator: torch.Generator | None = None, gc_tilt: float = 0.0) -> torch.Tensor:
    """(..., V) logits -> (...) samples from softmax(logits / temperature + tilt), by Gumbel-max;
    gc_tilt is added to C's and G's logits (gc_bias)."""
    u = torch.rand(logits.shape, device=logits.device, generator=generator).clamp_(1e-10, 1 - 1e-10)
    z = logits / max(temperature, 1e-6)
    if gc_tilt:
        z = z + gc_bias(gc_tilt, z.device)
    return (z - torch.log(-torch.log(u))).argmax(-1)


def gc_bias(tilt: float, device) -> torch.Tensor:
    """(4,) logit offsets that tilt every base's distribution towards C and G (tilt > 0) or A and T:
    p'(b) is proportional to p(b) exp(tilt [b in {C, G}]). Ensemble.calibrate_gc picks the tilt whose
    samples have a requested mean GC."""
    return torch.tensor([0.0, tilt, tilt, 0.0], device=device)


def place_prompt(out: torch.Tensor, prompt: torch.Tensor | None) -> int:
    """Write a prompt's first bases into every row of ``out`` (n, L); returns how many (0 without
    one). Every sampler fixes its prefix this way."""
    p = 0 if prompt is None else min(int(prompt.numel()), out.shape[1])
    if p:
        out[:, :p] = prompt[:p].to(out.device, out.dtype)
    return p


def minibatch_std(f: torch.Tensor) -> torch.Tensor:
    """(B, F) pooled features -> (B, F + 1): the mean over features of the batch standard deviation
    as one more feature, so a collapsed batch is easy for a discriminator to spot."""
    s = f.std(0, unbiased=False).mean() if f.shape[0] > 1 else f.new_zeros(())
    return torch.cat([f, s.expand(f.shape[0], 1)], 1)


class ContextLogits(nn.Module):
    """Direct n-gram connection (the maximum-entropy part of Mikolov et al.'s RNNME language model):
    a learned table of logits over A, C, G, T indexed by the previous ``order`` bases, added to a
    network's logits. It lets an autoregressive generator represent short-range statistics exactly,
    as a Markov chain of that order does, while the network learns the rest. Positions before the
    start read as a fifth symbol, so the first bases have their own rows. Zero-initialised: at the
    start of training it changes nothing."""

    def __init__(self, order: int):
        super().__init__()
        self.order = order
        self.table = nn.Embedding(5 ** order, 4)
        nn.init.zeros_(self.table.weight)
        # A closing refit's change to the trained table, kept apart (a buffer, not a parameter) so a
        # resumed run can drop it and continue exactly from the trained state.
        self.register_buffer("refit", torch.zeros(5 ** order, 4))

    def index(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L) bases -> (B, L) row of each position's context x[:, t-order:t] (4 = before start)."""
        B, L = x.shape
        pad = F.pad(x, (self.order, 0), value=4)
        idx = torch.zeros(B, L, dtype=torch.long, device=x.device)
        for j in range(self.order):
            idx = idx * 5 + pad[:, j : j + L]
        return idx

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, L, 4) for teacher forcing
        idx = self.index(x)
        return self.table(idx) + self.refit[idx]

    def step(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """(B, 4) logits of position t given the bases x[:, :t] already written."""
        idx = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        for s in range(t - self.order, t):
            idx = idx * 5 + (x[:, s] if s >= 0 else 4)
        return self.table(idx) + self.refit[idx]


@dataclass(frozen=True)
class NgramOptions:
    """Config fields of an autoregressive family with a ContextLogits table and its closing refit."""

    ngram_order: int = option(0, "direct n-gram logits over the previous bases (0 = none)")
    ngram_refit: int = option(0, "closing fit: refit the n-gram table on this many training windows (0 = off)")
    ngram_refit_prior: float = option(1.0, "Gaussian prior (precision, in tokens) keeping the refit near the trained table")
    ngram_refit_tolerance: float = option(0.001, "drop the refit if held-out NLL rises more (nats per base)")
    ngram_min_bases: int = option(0, "no n-gram table when the training windows hold fewer bases (0 = always one)")
    ngram_refit_priced_iters: int = option(100, "L-BFGS iterations --budget keeps time for (at most 100, the "
                                                "refit's cap; a fit that needs more is cut at its deadline)")

    def validate(self):
        parent = getattr(super(), "validate", None)
        if parent:
            parent()
        if not 0 <= self.ngram_order <= 8:
            raise ConfigError("model.ngram_order must be between 0 and 8")
        if not 1 <= self.ngram_refit_priced_iters <= REFIT_ITERS:
            raise ConfigError(f"model.ngram_refit_priced_iters must be between 1 and {REFIT_ITERS}")

    def for_data(self, n_bases: int):
        """Below ngram_min_bases training bases the table is left out (ngram_order 0). Measured
        (docs/benchmarks.md): the table cut 4-mer JS 3-7x on the two bacteria (1.7 and 3.5 Mb of
        training windows) and made C2ST worse on the 160 kb human stretches and 39 kb lambda."""
        if self.ngram_order and n_bases < self.ngram_min_bases:
            note = (f"model.ngram_order {self.ngram_order} -> 0: {n_bases:,} training bases, fewer than "
                    f"model.ngram_min_bases ({self.ngram_min_bases:,}); no n-gram table")
            return dataclasses.replace(self, ngram_order=0), note
        return self, None


def refit_context_logits(table: ContextLogits, network_logits, opts: NgramOptions, train_x, val, device,
                         seed: int, train_y=None, val_y=None, rows_of=None, deadline: float | None = None) -> dict:
    """Refit an n-gram table to maximum likelihood with the network frozen.

    ``network_logits(x, noise_generator, labels)`` gives the network's logits (B, L, 4) for windows
    x (labels: their data labels, train_y / val_y, or None), without the table. With those fixed, the table is a log-linear (maximum-entropy) model of the
    next base given the previous ``ngram_order`` bases: a convex problem, solved by L-BFGS on
    ``ngram_refit`` training windows. At its optimum the expected counts of every (context, base)
    pair equal the observed ones, the property that makes a Markov chain match the k-mer spectrum;
    SGD leaves the sparse table short of it. The refit is dropped when held-out NLL rises by more
    than ``ngram_refit_tolerance`` (too little data for the table). The change is kept in the
    table's ``refit`` buffer, apart from the trained weights.

    ``rows_of(x, noise_generator, labels)`` replaces the autoregressive reading of a batch where a
    family predicts other positions than every next base: it returns the network's logits without
    the table (N, 4), each prediction's table rows (N,) or (N, T) (T rows summed: tables side by
    side in one weight) and the bases predicted (N,) (the masked family: its masked positions).
    ``table`` is then only the holder of the weight and its ``refit`` buffer.

    ``deadline`` (a ``time.time()``; None: none): under --budget, L-BFGS runs in rounds of
    REFIT_ROUND iterations and stops after the round that passes it (at least one round runs, so the
    fit is never skipped); ``refit_iters`` says how many ran of the 100 it may take, ``refit_cut``
    whether the deadline, not convergence, ended it."""
    # its own random streams: the training ones (saved for --resume) are left where they were
    rows = torch.randperm(train_x.shape[0], generator=torch.Generator().manual_seed(seed))
    noise = torch.Generator(device=device).manual_seed(seed + 3)
    keep = rows[: opts.ngram_refit]
    fit_x = train_x[keep.to(train_x.device)].long()
    fit_y = None if train_y is None else train_y[keep.to(train_y.device)]
    has_val = val is not None and val.shape[0]
    val_x = val[:4096].long() if has_val else fit_x[:0]
    val_y = None if val_y is None or not has_val else val_y[:4096]

    rows_of = _rows_reader(table, network_logits, rows_of)
    t0 = time.time()
    base, idx, y = _frozen_rows(rows_of, fit_x, fit_y, device, noise)
    W = (table.table.weight + table.refit).detach().clone().requires_grad_(True)
    out = {"refit_windows": float(fit_x.shape[0])}
    if val_x.shape[0]:
        vb, vi, vy = _frozen_rows(rows_of, val_x, val_y, device, noise)
    with torch.no_grad():
        out["refit_nll_before"] = float(_table_nll(base, idx, y, W))
        if val_x.shape[0]:
            out["refit_val_nll_before"] = float(_table_nll(vb, vi, vy, W))
    t1 = time.time()
    out["refit_frozen_s"] = t1 - t0  # the frozen network's passes over the fit's and the held-out windows
    out.update(_solve_table(base, idx, y, W, opts.ngram_refit_prior, deadline))
    out["refit_solve_s"] = time.time() - t1
    with torch.no_grad():
        out["refit_nll_after"] = float(_table_nll(base, idx, y, W))
        kept = True
        if val_x.shape[0]:
            out["refit_val_nll_after"] = float(_table_nll(vb, vi, vy, W))
            kept = out["refit_val_nll_after"] - out["refit_val_nll_before"] <= opts.ngram_refit_tolerance
        out["refit_kept"] = float(kept)
        if kept:
            table.refit.copy_(W.detach() - table.table.weight)
    return out


def _rows_reader(table: ContextLogits, network_logits, rows_of):
    """rows_of, or the autoregressive reading of a batch: every next base, its table row, its logits."""
    if rows_of is not None:
        return rows_of

    def rows(xb, g, yb):
        return network_logits(xb, g, yb).reshape(-1, 4), table.index(xb).reshape(-1), xb.reshape(-1)
    return rows


PRICE_ROWS = 200_000  # frozen rows the solver's price is timed on (a few windows' rows, repeated)
EVALS_PER_ITER = 1.25  # loss-and-gradient evaluations per L-BFGS iteration (its strong-Wolfe line search)


def price_refit(table: ContextLogits, network_logits, opts: NgramOptions, x, device, y=None, rows_of=None,
                repeats: int = 5) -> tuple[float, float, float]:
    """What refit_context_logits costs, measured here: (frozen rows per window, seconds per row of
    the solver's opts.ngram_refit_priced_iters iterations: the count the family's fits usually take,
    at most REFIT_ITERS; the deadline guards the rest; seconds per window of the frozen pass), each
    the median of timed repeats. The frozen pass is timed as the fit reads it: masked's (a masking,
    the network and its table apart) ran 1.5x slower per window than its held-out pass, which had
    priced it, and its refit on S. suis at --budget 300 got 27.7 s of passes where 18 s were kept.
    The rows of the windows x (labels y) are read as the fit reads them and repeated to
    PRICE_ROWS, and the loss-and-gradient of the table is timed on them. The solver's time is
    proportional to the rows (every window's every prediction), not to the network's speed: pricing the
    fit from forward passes alone kept 48 s back for masked's refit on S. suis that took 64 s, and
    gumbel's (a fast LSTM, 1.7 M rows) was cut after 10 of its iterations. Uses its own random
    streams."""
    reader = _rows_reader(table, network_logits, rows_of)
    seconds, (base, idx, t) = _median_seconds(
        lambda: _frozen_rows(reader, x.long(), y, device, torch.Generator(device=device).manual_seed(0)), 3, device)
    frozen_s = seconds / max(x.shape[0], 1)
    per_window = t.shape[0] / max(x.shape[0], 1)
    reps = max(1, -(-PRICE_ROWS // max(t.shape[0], 1)))
    base, t = base.repeat(reps, 1), t.repeat(reps)
    idx = idx.repeat(reps, *([1] * (idx.dim() - 1)))
    W0 = (table.table.weight + table.refit).detach().clone()
    W = W0.clone().requires_grad_(True)

    def once():
        W.grad = None
        loss = _table_nll(base, idx, t, W) + 0.5 * opts.ngram_refit_prior * (W - W0).pow(2).sum() / t.numel()
        loss.backward()

    per_row = _median_seconds(once, repeats, device)[0] / max(t.shape[0], 1)
    return per_window, per_row * opts.ngram_refit_priced_iters * EVALS_PER_ITER, frozen_s


def _median_seconds(fn, repeats: int, device) -> tuple[float, object]:
    """(the median seconds of ``repeats`` timed calls of fn, the last call's result), after one
    untimed call that pays one-off set-up costs. (One timing of three calls together priced
    masked's solver at 0.94 ms a window in one run of four; it took 0.63.)"""
    cuda = torch.device(device).type == "cuda"
    out = fn()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.time()
        out = fn()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.time() - start)
    return sorted(times)[len(times) // 2], out


@torch.no_grad()
def _frozen_rows(rows_of, x, y, device, noise):
    """The frozen network's (logits, table rows, targets) of windows x (labels y), in batches."""
    outs, idx, targets = [], [], []
    rows = rows_per_pass(x.shape[1], 2048, device)
    for s in range(0, x.shape[0], rows):
        yb = None if y is None else y[s : s + rows].to(device)
        o, i, t = rows_of(x[s : s + rows].to(device), noise, yb)
        outs.append(o)
        idx.append(i)
        targets.append(t)
    return torch.cat(outs), torch.cat(idx), torch.cat(targets)


def _table_nll(base, idx, targets, w):
    """Mean NLL of the targets with table w's rows (idx: (N,) or (N, T), T rows summed) added."""
    return F.cross_entropy(base + (w[idx] if idx.dim() == 1 else w[idx].sum(1)), targets)


def _solve_table(base, idx, targets, W, prior: float, deadline: float | None) -> dict:
    """L-BFGS on W (in place): mean NLL plus a Gaussian prior (precision ``prior``, in units of one
    token) on its change; to convergence, or rounds until ``deadline`` (lbfgs_until)."""
    W0 = W.detach().clone()
    opt = torch.optim.LBFGS([W], lr=1.0, max_iter=REFIT_ITERS if deadline is None else REFIT_ROUND,
                            max_eval=REFIT_ITERS * 5 // 4, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = _table_nll(base, idx, targets, W) + 0.5 * prior * (W - W0).pow(2).sum() / targets.numel()
        loss.backward()
        return loss
    return lbfgs_until(opt, closure, W, deadline)


REFIT_ITERS = 100  # L-BFGS iterations of a closing refit
REFIT_ROUND = 10  # iterations between looks at the clock when the refit has a deadline


def lbfgs_until(opt: torch.optim.LBFGS, closure, param: torch.Tensor, deadline: float | None) -> dict:
    """Run ``opt`` (built with max_iter REFIT_ROUND when there is a deadline) to REFIT_ITERS
    iterations, convergence, or the first round that ends past ``deadline``. LBFGS keeps its
    history between step() calls, so the rounds continue one optimisation. Returns refit_iters and
    refit_cut (1: stopped by the deadline before converging)."""
    if deadline is None:
        opt.step(closure)
        return {"refit_iters": float(opt.state[param].get("n_iter", 0)), "refit_cut": 0.0}
    done, cut = 0, False
    while done < REFIT_ITERS:
        opt.step(closure)
        n = int(opt.state[param].get("n_iter", 0))
        if n - done < REFIT_ROUND:  # the round ended early: converged (a tolerance was met) or out of evaluations
            done = n
            break
        done = n
        if time.time() > deadline and done < REFIT_ITERS:
            cut = True
            break
    return {"refit_iters": float(done), "refit_cut": float(cut)}


def ngram_closing_fit(opts: NgramOptions, table_of, network_logits_of, rows_of_of=None):
    """The ClosingFit of a family with an n-gram table: ``table_of(nets)`` is its ContextLogits (None
    where the networks have none: then nothing is fitted or undone) and ``network_logits_of(nets)``
    the frozen network's logits function (see refit_context_logits); ``rows_of_of(nets)``, where
    given, the reader of predictions that replaces it (refit_context_logits's rows_of)."""
    from models.registry import ClosingFit

    if not (opts.ngram_order and opts.ngram_refit):
        return None

    def fit(nets, train_x, train_y, ctx):
        if train_x.shape[0] == 0 or table_of(nets) is None:  # no table (e.g. a real-valued policy)
            return {}
        was = nets.training
        nets.eval()
        try:
            return refit_context_logits(table_of(nets), network_logits_of(nets) if network_logits_of else None, opts,
                                        train_x, ctx.val, ctx.device, ctx.cfg.train.seed, train_y, ctx.val_labels,
                                        rows_of=rows_of_of(nets) if rows_of_of else None,
                                        deadline=ctx.deadline)
        finally:
            nets.train(was)

    def undo(nets):
        if table_of(nets) is not None:
            table_of(nets).refit.zero_()

    def price(nets, x, y, ctx):
        if x.shape[0] == 0 or table_of(nets) is None:
            return 0.0, 0.0, 0.0
        was = nets.training
        nets.eval()
        try:
            return price_refit(table_of(nets), network_logits_of(nets) if network_logits_of else None, opts, x,
                               ctx.device, y, rows_of=rows_of_of(nets) if rows_of_of else None)
        finally:
            nets.train(was)

    return ClosingFit(windows=opts.ngram_refit, fit=fit, undo=undo, price=price)
