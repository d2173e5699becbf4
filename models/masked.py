"""Masked-token transformer: predicts masked bases from both sides, fills gaps, and generates by
iterative unmasking.

Tokens : A, C, G, T (0-3), [MASK] (4), [PAD] (5) -> embedding (a one-hot projection) + learned
         positions -> pre-norm transformer encoder -> LayerNorm -> linear projection to the vocabulary.
Loss   : cross-entropy on the masked positions only (ignore_index elsewhere), optionally with the
         GC-balanced term on the predictions (train.balance_weight; the curriculum prototype's loss).
Masking: model.mask_rate "uniform" (the default) draws each training window's rate from U(0, 1)
         and averages the cross-entropy per window: the any-order autoregressive objective (Uria et
         al. 2014; Hoogeboom et al. 2022, ARDM), whose conditionals are exactly the ones generation
         by random-order unmasking samples from, from all masked to one left. "fixed" masks every
         base with model.mask_prob (BERT's pretraining: good at filling a few bases, but generation
         then starts from inputs it never saw). BERT-style 80/10/10 replacement (mask / random
         base / unchanged) with model.bert_replace.
Scores : val_masked_acc / val_masked_loss at model.mask_prob on held-out windows (the capability),
         and val_nll, the any-order bound on held-out NLL in nats per base (each window masked at
         a stratified rate in (0, 1)); <model>_best.pt is picked by val_nll, what generation uses.
Tables : model.context_order k adds logits from a table row for the k tokens before a position
         and one for the k after ([MASK] and the ends read as a fifth symbol; SideTables), and
         model.context_refit refits them by maximum likelihood after training, the transformer
         frozen (the autoregressive families' n-gram table and closing refit, read both ways).
Classes: with labelled data or --condition gc (models.condition) a class embedding joins every
         position's input; the null class trains at model.label_drop, and --guidance W mixes the
         conditional and null logits at every unmasking step (classifier-free guidance).
Generate: start fully masked (or from a prompt); at each of model.gen_steps steps predict every
         masked position, sample a base for each with the temperature, and reveal some of them in
         a random order, so every position is revealed after gen_steps steps.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import REFIT_ITERS, NgramOptions, PositionOptions, TransformerStack, ngram_closing_fit, place_prompt, sample_categorical
from models.condition import Classes, ConditionOptions, GuidanceOptions, classes_of, mix, requested, with_null
from models.registry import ClosingFit, DataStats, Family, register
from train.losses import balanced_loss, rows_per_pass
from utils.errors import ConfigError

MASK, PAD, VOCAB = 4, 5, 6
IGNORE = -100


# model.gen_steps 0: one position revealed per step up to this many positions; longer sequences
# reveal several (random, scattered) positions a step, so generation costs AUTO_GEN_STEPS model
# passes, not one per base (a pass over L bases costs O(L^2) attention: one per base is O(L^3))
AUTO_GEN_STEPS = 128

@dataclass(frozen=True)
class MaskedConfig(PositionOptions, GuidanceOptions, ConditionOptions):
    d_model: int = 64  # embedding / transformer width (prototype: 16, then 32)
    n_layers: int = 4  # transformer encoder layers (prototype: 2)
    n_heads: int = 4
    dropout: float = 0.1  # prototype: 0.02 (residual and feed-forward dropout)
    attn_dropout: float = 0.0  # on attention weights; > 0 forces the plain attention kernel (7x slower at 500 bp)
    ff_mult: int = 4
    kernel: int = 5  # width of the input projection (a 1-D convolution; 1 = a per-token embedding)
    mask_prob: float = 0.15  # fraction of bases masked per training window (prototype: 0.3); and in val_masked_acc
    mask_rate: str = "uniform"  # fixed (every window at mask_prob) | uniform (each window's rate from U(0, 1))
    bert_replace: bool = False  # 80% [MASK], 10% random base, 10% unchanged
    gen_steps: int = 0  # unmasking steps when generating; 0 = auto: one per position up to AUTO_GEN_STEPS
    val_windows: int = 2000  # held-out windows of 70 bp scored each epoch (as many bases at other lengths)
    context_order: int = 0  # direct logits from two tables indexed by the k tokens left and right (0 = none)
    context_refit: int = 0  # closing fit: refit the tables on this many training windows, network frozen (0 = off)
    context_refit_prior: float = 1.0  # Gaussian prior (precision, in tokens) keeping the refit near the trained tables
    context_refit_tolerance: float = 0.001  # drop the refit if held-out NLL rises more (nats per base)
    context_min_bases: int = 0  # no tables below this many training bases (0 = always)
    context_center: int = 0  # with the tables, a third one indexed by the h tokens on both sides together (0 = none)
    context_refit_priced_iters: int = 100  # L-BFGS iterations --budget keeps time for (NgramOptions.ngram_refit_priced_iters)

    def validate(self):
        super().validate()
        if not (0 <= self.dropout < 1 and 0 <= self.attn_dropout < 1):
            raise ConfigError("model.dropout and model.attn_dropout must be in [0, 1)")
        if not 0 < self.mask_prob < 1:
            raise ConfigError(f"model.mask_prob must be in (0, 1), got {self.mask_prob}")
        if self.mask_rate not in ("fixed", "uniform"):
            raise ConfigError(f"model.mask_rate must be fixed or uniform, got {self.mask_rate!r}")
        if self.d_model % self.n_heads:
            raise ConfigError("model.d_model must be a multiple of model.n_heads")
        if self.n_layers < 1 or self.gen_steps < 0 or self.kernel < 1:
            raise ConfigError("model.n_layers and kernel must be >= 1 and gen_steps >= 0")
        if not 0 <= self.context_order <= 6:
            raise ConfigError("model.context_order must be between 0 and 6")
        if not 0 <= self.context_center <= 3 or (self.context_order and self.context_center > self.context_order):
            raise ConfigError("model.context_center must be between 0 and 3, and at most model.context_order")
        if not 1 <= self.context_refit_priced_iters <= REFIT_ITERS:
            raise ConfigError(f"model.context_refit_priced_iters must be between 1 and {REFIT_ITERS}")

    def for_data(self, n_bases: int):
        """Below context_min_bases training bases the context tables are left out (as the n-gram
        table of the autoregressive families: models.blocks.NgramOptions.for_data)."""
        if self.context_order and n_bases < self.context_min_bases:
            return dataclasses.replace(self, context_order=0, context_center=0), (
                f"model.context_order {self.context_order} -> 0: {n_bases:,} training bases, fewer than "
                f"model.context_min_bases ({self.context_min_bases:,}); no context tables")
        return self, None


class MaskedLM(nn.Module):
    def __init__(self, c: MaskedConfig, max_len: int, n_classes: int = 0):
        super().__init__()
        self.max_len, self.gen_steps = max_len, c.gen_steps
        self.mask_prob = c.mask_prob
        self.body = TransformerStack(VOCAB, c.d_model, c.n_layers, c.n_heads, max_len, c.dropout,
                                     ff_mult=c.ff_mult, kernel=c.kernel, attn_dropout=c.attn_dropout,
                                     rel_pos=c.rel_pos, rope=c.rope)
        self.head = nn.Linear(c.d_model, VOCAB)
        # classes 0..n-1 and the null class n (classifier-free guidance)
        self.cls = nn.Embedding(n_classes + 1, c.d_model) if n_classes else None
        # the bidirectional analogue of the autoregressive families' n-gram table (ContextLogits):
        # logits indexed by the k tokens on each side, [MASK] and beyond the ends read as one fifth
        # symbol. A transformer at --budget 300 had not learnt that S. suis avoids GATC (2.6 times
        # too many in its samples); a table has a row for "GAT then ?" and one for "? then ATC".
        self.near = SideTables(c.context_order, c.context_center) if c.context_order else None

    def forward(self, tokens: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) tokens [, (B,) classes; None: the null class] -> (B, L, VOCAB) logits."""
        add = None
        if self.cls is not None:
            if y is None:
                y = torch.full(tokens.shape[:1], self.cls.num_embeddings - 1, dtype=torch.long, device=tokens.device)
            add = self.cls(y)
        logits = self.head(self.body(F.one_hot(tokens, VOCAB).float(), add))
        if self.near is None:
            return logits
        return torch.cat([logits[..., :4] + self.near(tokens), logits[..., 4:]], -1)

    def base_logits(self, tokens, y=None, guidance: float = 1.0):
        """(B, L, 4): predictions over A, C, G, T only; guidance != 1 mixes in the null class's."""
        if self.cls is None or y is None or guidance == 1.0:
            return self(tokens, y)[..., :4]
        both = self(tokens.repeat(2, 1), with_null(y, self.cls))[..., :4]
        return mix(both[: tokens.shape[0]], both[tokens.shape[0]:], guidance)


class SideTables(nn.Module):
    """The bidirectional analogue of the autoregressive families' n-gram table (ContextLogits):
    logits over A, C, G, T from one table row for the k tokens before a position and one for the k
    after it, summed; [MASK], [PAD] and beyond the ends read as one fifth symbol. Both tables are
    one weight (the 5^k "before" rows, then the 5^k "after" rows), so the closing refit
    (models.blocks.refit_context_logits) fits them together. Zero-initialised, with the refit's
    change in a buffer apart from the trained weights (dropped on resume, as ContextLogits's).

    ``center`` h > 0 adds a third table, one row for the h tokens before and the h after together
    (5^(2h) rows after the side tables'): the sum of a "before" and an "after" row cannot say that
    G?TC is rare while G?TA is not, and random-order sampling fills a base between known neighbours
    about as often as at the end of a known run (S. suis's avoided palindromes, GATC, CCGG, GGCC)."""

    def __init__(self, order: int, center: int = 0):
        super().__init__()
        self.order, self.center = order, center
        rows = 2 * 5 ** order + (5 ** (2 * center) if center else 0)
        self.table = nn.Embedding(rows, 4)
        nn.init.zeros_(self.table.weight)
        self.register_buffer("refit", torch.zeros(rows, 4))

    def index(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) tokens -> (B, L, 2) rows: the k tokens before each position, the k after (and a
        third, (B, L, 3), with ``center``: the h before and the h after as one row)."""
        k, L = self.order, tokens.shape[1]
        pad = F.pad(tokens.clamp(max=MASK), (k, k), value=MASK)
        before = torch.zeros_like(tokens)
        after = torch.zeros_like(tokens)
        for j in range(k):
            before = before * 5 + pad[:, j : j + L]
            after = after * 5 + pad[:, k + 1 + j : k + 1 + j + L]
        rows = [before, after + 5 ** k]
        if self.center:
            h, mid = self.center, torch.zeros_like(tokens)
            for j in [*range(k - h, k), *range(k + 1, k + 1 + h)]:  # h before, then h after
                mid = mid * 5 + pad[:, j : j + L]
            rows.append(mid + 2 * 5 ** k)
        return torch.stack(rows, -1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, L, 4)
        idx = self.index(tokens)
        return (self.table(idx) + self.refit[idx]).sum(-2)


def mask_tokens(x: torch.Tensor, prob, generator=None, bert: bool = False):
    """Mask a (B, L) batch of codes 0-3 with rate ``prob`` (a float, or a (B,) tensor: one rate per
    row). Returns (inputs, labels): labels are the true base at masked positions and IGNORE
    elsewhere. At least one position per row is masked."""
    B, L = x.shape
    r = torch.rand(B, L, device=x.device, generator=generator)
    m = r < (prob.unsqueeze(1) if torch.is_tensor(prob) else prob)
    forced = torch.randint(0, L, (B,), device=x.device, generator=generator)
    m[torch.arange(B, device=x.device), forced] |= ~m.any(1)
    labels = torch.where(m, x, torch.full_like(x, IGNORE))
    inp = x.clone()
    if bert:
        u = torch.rand(B, L, device=x.device, generator=generator)
        rnd = torch.randint(0, 4, (B, L), device=x.device, generator=generator)
        inp = torch.where(m & (u < 0.8), torch.full_like(x, MASK), inp)
        inp = torch.where(m & (u >= 0.8) & (u < 0.9), rnd, inp)
    else:
        inp[m] = MASK
    return inp, labels


@torch.no_grad()
def unmask(model: MaskedLM, tokens: torch.Tensor, steps: int, temperature: float = 1.0,
           generator=None, y=None, guidance: float = 1.0, gc_tilt: float = 0.0) -> torch.Tensor:
    """Fill every [MASK] in (B, L) tokens by iterative unmasking; other tokens are never changed.

    Each step samples a base (with the temperature) for every masked position and reveals some of
    them in a random order; with one position a step this samples from the model's conditionals
    in a random order. (Revealing the most confident first, MaskGIT's order, wrote GC-rich repeats
    on DNA: docs/benchmarks.md.) y: each row's class for a conditional model (None: the null
    class), with classifier-free ``guidance``; gc_tilt: models.blocks.gc_bias on every draw."""
    tokens = tokens.clone()
    masked = tokens == MASK
    total = masked.sum(1)  # per row
    if not masked.any():
        return tokens
    steps = max(1, steps)
    for s in range(steps):
        remaining = masked.sum(1)
        if not remaining.any():
            break
        pick = sample_categorical(model.base_logits(tokens, y, guidance), temperature, generator, gc_tilt)  # (B, L)
        order_key = torch.rand(pick.shape, device=pick.device, generator=generator).masked_fill(~masked, -math.inf)
        # reveal so that all masked positions are revealed after `steps` steps
        k = torch.ceil(total.float() * (s + 1) / steps).long() - (total - remaining)
        k = torch.minimum(k.clamp(min=1), remaining)
        order = order_key.argsort(1, descending=True)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(tokens.shape[1], device=tokens.device).expand_as(order))
        show = masked & (rank < k.unsqueeze(1))
        tokens = torch.where(show, pick, tokens)
        masked = masked & ~show
    return tokens


@torch.no_grad()
def infill(model: MaskedLM, codes: torch.Tensor, gaps: torch.Tensor, *, steps: int = 0,
           temperature: float = 1.0, generator=None, y=None, guidance: float = 1.0) -> torch.Tensor:
    """Fill the gap positions of one sequence of any length (1-D codes, 1-D bool gaps).

    Windows of the model's length slide along the sequence (half-window steps); each window with
    gaps fills them by iterative unmasking, with the bases already filled as context. y: (1,) the
    class to fill as (a conditional model; None: the null class), with classifier-free guidance."""
    L = model.max_len
    tok = codes.clone().long()
    tok[gaps] = MASK
    n = tok.numel()
    starts = list(range(0, max(1, n - L + 1), max(1, L // 2)))
    if n > L and starts[-1] != n - L:
        starts.append(n - L)
    for s in starts:
        w = tok[s : s + L]
        if (w == MASK).any():
            k = int((w == MASK).sum())
            tok[s : s + L] = unmask(model, w.unsqueeze(0), steps or k, temperature, generator, y, guidance)[0]
    return tok


@torch.no_grad()
def masked_accuracy(model: MaskedLM, x: torch.Tensor, prob: float, seed: int = 0, batch: int = 512, y=None):
    """(accuracy, loss) on the masked positions of windows x (B, L) (of classes y, for a conditional
    model), with a fixed masking seed."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    batch = rows_per_pass(x.shape[1], batch, x.device)
    hit = tot = 0
    loss = 0.0
    for i in range(0, x.shape[0], batch):
        inp, lab = mask_tokens(x[i : i + batch], prob, g)
        logits = model.base_logits(inp, None if y is None else y[i : i + batch])
        m = lab != IGNORE
        hit += int((logits.argmax(-1)[m] == lab[m]).sum())
        tot += int(m.sum())
        loss += float(F.cross_entropy(logits[m], lab[m], reduction="sum"))
    return hit / max(tot, 1), loss / max(tot, 1)


@torch.no_grad()
def any_order_nll(model: MaskedLM, x: torch.Tensor, seed: int = 0, batch: int = 512, y=None) -> float:
    """The any-order (ARDM) bound on held-out NLL, nats per base: window i is masked at the
    stratified rate (i + 0.5) / n, and each window's mean cross-entropy over its masked bases is
    averaged. Random-order generation samples from exactly these conditionals."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    n = x.shape[0]
    rates = (torch.arange(n, device=x.device, dtype=torch.float32) + 0.5) / n
    rates = rates[torch.randperm(n, generator=g, device=x.device)]  # not tied to the windows' order
    batch = rows_per_pass(x.shape[1], batch, x.device)
    total = 0.0
    for i in range(0, n, batch):
        inp, lab = mask_tokens(x[i : i + batch], rates[i : i + batch], g)
        logits = model.base_logits(inp, None if y is None else y[i : i + batch])
        total += float(balanced_loss(logits, lab, weight=0.0, target_gc=0.5, ignore_index=IGNORE, per_row=True)) \
            * inp.shape[0]
    return total / max(n, 1)


@register("masked")
class Masked(Family):
    Config = MaskedConfig
    select_by = "val_nll"  # the any-order bound on held-out NLL: the conditionals generation uses
    conditional = True  # --gc with --condition gc
    labelled = True
    guided = True

    def build(self, cfg, stats: DataStats) -> nn.ModuleDict:
        classes = Classes(stats, cfg.model)
        nets = {"M": MaskedLM(cfg.model, stats.seq_len, classes.n)}
        if classes.n:
            nets["classes"] = classes
        return nn.ModuleDict(nets)

    def optimizers(self, nets, cfg):
        return {"g": (list(nets["M"].parameters()), cfg.train.lr_g)}

    def train_step(self, nets, batch, ctx) -> dict[str, float]:
        c = ctx.cfg.model
        uniform = c.mask_rate == "uniform"
        rate = torch.rand(batch.shape[0], device=batch.device, generator=ctx.generator) if uniform else c.mask_prob
        inp, lab = mask_tokens(batch, rate, ctx.generator, c.bert_replace)
        y = classes_of(nets, batch, ctx.batch_labels)
        if y is not None:  # classifier-free guidance: some windows train the null class
            y = nets["classes"].dropped(y, c.label_drop, ctx.generator)
        logits = nets["M"](inp, y)
        loss = balanced_loss(logits, lab, weight=ctx.balance_weight, target_gc=ctx.target_gc,
                             ref_freq=ctx.ref_freq, ignore_index=IGNORE, per_row=uniform)
        norm = ctx.optimize("g", loss)
        return {"loss": loss.detach(), "grad_norm": norm}

    def closing_fit(self, cfg) -> ClosingFit | None:
        """Refit the context tables to maximum likelihood with the transformer frozen, on training
        windows masked at uniform rates as in training: at the optimum the expected count of every
        (context, base) pair equals the observed one, what SGD left the sparse tables short of
        (S. suis at --budget 300: GATC 2.2 times too frequent in the samples)."""
        c = cfg.model
        if not (c.context_order and c.context_refit):
            return None
        opts = NgramOptions(ngram_order=c.context_order, ngram_refit=c.context_refit,
                            ngram_refit_prior=c.context_refit_prior, ngram_refit_tolerance=c.context_refit_tolerance,
                            ngram_refit_priced_iters=c.context_refit_priced_iters)

        def rows_of(nets):
            M = nets["M"]

            def rows(x, g, labels):
                rate = torch.rand(x.shape[0], device=x.device, generator=g)
                inp, lab = mask_tokens(x, rate, g)
                logits = M(inp, classes_of(nets, x, labels))[..., :4] - M.near(inp)
                m = lab != IGNORE
                return logits[m], M.near.index(inp)[m], lab[m]
            return rows

        return ngram_closing_fit(opts, lambda nets: nets["M"].near, None, rows_of)

    def evaluate(self, nets, ctx) -> dict[str, float]:
        out = {}
        if ctx.val is not None and len(ctx.val):
            c = ctx.cfg.model
            M = nets["M"]
            was = M.training
            M.eval()
            k = min(c.val_windows, max(200, c.val_windows * 70 // ctx.val.shape[1]))  # bounded cost at length
            x = ctx.val[:k].to(ctx.device).long()
            lab = None if ctx.val_labels is None else ctx.val_labels[:k].to(ctx.device)
            y = classes_of(nets, x, lab)
            acc, loss = masked_accuracy(M, x[:, : M.max_len], c.mask_prob, seed=ctx.cfg.train.seed, y=y)
            nll = any_order_nll(M, x[:, : M.max_len], seed=ctx.cfg.train.seed, y=y)
            M.train(was)
            out.update(val_masked_acc=acc, val_masked_loss=loss, val_nll=nll, val_passes=2 * x.shape[0])
        return out

    def infill(self, nets, codes, gaps, *, temperature=1.0, generator=None, label=None, gc=None, guidance=1.0):
        """Fill the gap positions (1-D bool) of one sequence (1-D codes); known bases unchanged. A
        model trained with classes fills as the requested label (and GC bin), else as its null
        class. (A capability of this family: main.py's --infill looks for this method.)"""
        M = nets["M"]
        dev = next(M.parameters()).device
        y = requested(nets, 1, dev, generator, label=label, gc=gc) if (label is not None or gc is not None) else None
        return infill(M, codes.to(dev), gaps.to(dev), temperature=temperature, generator=generator, y=y,
                      guidance=guidance).cpu()

    @torch.no_grad()
    def sample(self, nets, n, length, *, temperature=1.0, generator=None, prompt=None, gc=None, label=None,
               guidance=1.0, gc_tilt=0.0):
        M = nets["M"]
        if length > M.max_len:
            raise ConfigError(f"the masked model was trained on {M.max_len} bp; it cannot generate {length} bp")
        dev = next(M.parameters()).device
        out, rows = [], rows_per_pass(length, 1024, dev)
        for s in range(0, n, rows):
            m = min(rows, n - s)
            tok = torch.full((m, length), MASK, dtype=torch.long, device=dev)
            place_prompt(tok, prompt)
            y = requested(nets, m, dev, generator, label=label, gc=gc)
            out.append(unmask(M, tok, M.gen_steps or min(length, AUTO_GEN_STEPS), temperature, generator, y, guidance,
                              gc_tilt))
        return torch.cat(out)
