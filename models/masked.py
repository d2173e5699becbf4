"""Masked-token transformer: predicts masked bases from both sides, fills gaps, and generates by
iterative unmasking.

Tokens : A, C, G, T (0-3), [MASK] (4), [PAD] (5) -> embedding (a one-hot projection) + learned
         positions -> pre-norm transformer encoder -> LayerNorm -> linear projection to the vocabulary.
Loss   : cross-entropy on the masked positions only (ignore_index elsewhere), optionally with the
         GC-balanced term on the predictions (train.balance_weight; the curriculum prototype's loss).
Masking: each base is masked with model.mask_prob; BERT-style 80/10/10 replacement (mask / random
         base / unchanged) with model.bert_replace.
Generate: start fully masked (or from a prompt); at each of model.gen_steps steps predict every
         masked position, sample a base for each with the temperature, and reveal the most
         confident ones, so every position is revealed after gen_steps steps.
"""
from __future__ import annotations

import math
import resource
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import TransformerStack, sample_categorical
from models.registry import DataStats, Family, register
from train.losses import balanced_loss
from utils.errors import ConfigError

MASK, PAD, VOCAB = 4, 5, 6
IGNORE = -100


@dataclass(frozen=True)
class MaskedConfig:
    d_model: int = 64  # embedding / transformer width (prototype: 16, then 32)
    n_layers: int = 4  # transformer encoder layers (prototype: 2)
    n_heads: int = 4
    dropout: float = 0.1  # prototype: 0.02
    ff_mult: int = 4
    kernel: int = 5  # width of the input projection (a 1-D convolution; 1 = a per-token embedding)
    mask_prob: float = 0.15  # fraction of bases masked per training window (prototype: 0.3)
    bert_replace: bool = False  # 80% [MASK], 10% random base, 10% unchanged
    gen_steps: int = 0  # unmasking steps when generating; 0 = one per position
    reveal: str = "random"  # random: reveal positions in random order | confidence: most confident first
    choice_noise: float = 1.0  # reveal=confidence: Gumbel noise on the order (MaskGIT), annealed to 0
    gibbs_rounds: int = 0  # after unmasking, rounds of re-masking mask_prob of the bases and resampling
    val_windows: int = 2000  # held-out windows scored each epoch for masked accuracy

    def validate(self):
        if not 0 < self.mask_prob < 1:
            raise ConfigError(f"model.mask_prob must be in (0, 1), got {self.mask_prob}")
        if self.d_model % self.n_heads:
            raise ConfigError("model.d_model must be a multiple of model.n_heads")
        if self.reveal not in ("random", "confidence"):
            raise ConfigError(f"model.reveal must be random or confidence, got {self.reveal!r}")
        if self.n_layers < 1 or self.gen_steps < 0 or self.kernel < 1:
            raise ConfigError("model.n_layers and kernel must be >= 1 and gen_steps >= 0")


class MaskedLM(nn.Module):
    def __init__(self, c: MaskedConfig, max_len: int):
        super().__init__()
        self.max_len, self.gen_steps = max_len, c.gen_steps
        self.reveal, self.choice_noise, self.gibbs_rounds = c.reveal, c.choice_noise, c.gibbs_rounds
        self.mask_prob = c.mask_prob
        self.body = TransformerStack(VOCAB, c.d_model, c.n_layers, c.n_heads, max_len, c.dropout,
                                     ff_mult=c.ff_mult, kernel=c.kernel)
        self.head = nn.Linear(c.d_model, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, L) tokens -> (B, L, VOCAB) logits
        return self.head(self.body(F.one_hot(tokens, VOCAB).float()))

    def base_logits(self, tokens):  # (B, L, 4): predictions over A, C, G, T only
        return self(tokens)[..., :4]


def mask_tokens(x: torch.Tensor, prob: float, generator=None, bert: bool = False):
    """Mask a (B, L) batch of codes 0-3. Returns (inputs, labels): labels are the true base at
    masked positions and IGNORE elsewhere. At least one position per row is masked."""
    B, L = x.shape
    r = torch.rand(B, L, device=x.device, generator=generator)
    m = r < prob
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
           generator=None, reveal: str = "random", choice_noise: float = 1.0) -> torch.Tensor:
    """Fill every [MASK] in (B, L) tokens by iterative unmasking; other tokens are never changed.

    Each step samples a base (with the temperature) for every masked position and reveals some:
    reveal="random" in a random order (with one position a step, sampling from the model's
    conditionals in a random order), reveal="confidence" the most confident first, with MaskGIT's
    Gumbel noise on the confidences scaled by choice_noise * (1 - progress). Measured on E. coli
    (docs/benchmarks.md): confidence order without noise writes GC-rich repeats (GC 0.74, 4-mer JS
    0.73), with noise 1 still 4-mer JS 0.13; random order 0.008, the sampling floor of 300 sequences."""
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
        logits = model.base_logits(tokens)
        pick = sample_categorical(logits, temperature, generator)  # (B, L)
        conf = torch.log_softmax(logits / max(temperature, 1e-6), -1).gather(-1, pick.unsqueeze(-1)).squeeze(-1)
        noise = choice_noise * (1 - s / steps)
        if reveal == "random":
            conf = torch.rand(conf.shape, device=conf.device, generator=generator)
        elif noise > 0:
            u = torch.rand(conf.shape, device=conf.device, generator=generator).clamp_(1e-10, 1 - 1e-10)
            conf = conf - noise * torch.log(-torch.log(u))
        conf = conf.masked_fill(~masked, -math.inf)
        # reveal so that all masked positions are revealed after `steps` steps
        k = torch.ceil(total.float() * (s + 1) / steps).long() - (total - remaining)
        k = torch.minimum(k.clamp(min=1), remaining)
        order = conf.argsort(1, descending=True)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(tokens.shape[1], device=tokens.device).expand_as(order))
        show = masked & (rank < k.unsqueeze(1))
        tokens = torch.where(show, pick, tokens)
        masked = masked & ~show
    return tokens


@torch.no_grad()
def gibbs_refine(model: MaskedLM, tokens: torch.Tensor, free: torch.Tensor, rounds: int, prob: float,
                 temperature: float = 1.0, generator=None) -> torch.Tensor:
    """Resample the free positions (B, L bool) in rounds: mask a random fraction prob of them (the
    training masking rate, so the model sees inputs like those it learned from) and draw them
    from its predictions."""
    for _ in range(rounds):
        m = free & (torch.rand(tokens.shape, device=tokens.device, generator=generator) < prob)
        if not m.any():
            continue
        logits = model.base_logits(torch.where(m, torch.full_like(tokens, MASK), tokens))
        tokens = torch.where(m, sample_categorical(logits, temperature, generator), tokens)
    return tokens


@torch.no_grad()
def infill(model: MaskedLM, codes: torch.Tensor, gaps: torch.Tensor, *, steps: int = 0,
           temperature: float = 1.0, generator=None) -> torch.Tensor:
    """Fill the gap positions of one sequence of any length (1-D codes, 1-D bool gaps).

    Windows of the model's length slide along the sequence (half-window steps); each window with
    gaps fills them by iterative unmasking, with the bases already filled as context."""
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
            tok[s : s + L] = unmask(model, w.unsqueeze(0), steps or k, temperature, generator)[0]
    return tok


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 2**20 if sys.platform == "darwin" else kb / 1024


@torch.no_grad()
def masked_accuracy(model: MaskedLM, x: torch.Tensor, prob: float, seed: int = 0, batch: int = 512):
    """(accuracy, loss) on the masked positions of windows x (B, L), with a fixed masking seed."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    hit = tot = 0
    loss = 0.0
    for i in range(0, x.shape[0], batch):
        inp, lab = mask_tokens(x[i : i + batch], prob, g)
        logits = model.base_logits(inp)
        m = lab != IGNORE
        hit += int((logits.argmax(-1)[m] == lab[m]).sum())
        tot += int(m.sum())
        loss += float(F.cross_entropy(logits[m], lab[m], reduction="sum"))
    return hit / max(tot, 1), loss / max(tot, 1)


@register("masked")
class Masked(Family):
    Config = MaskedConfig
    autoregressive = True  # a prompt fixes the first bases

    def build(self, cfg, stats: DataStats) -> nn.ModuleDict:
        return nn.ModuleDict({"M": MaskedLM(cfg.model, stats.seq_len)})

    def param_groups(self, nets):
        return {"g": list(nets["M"].parameters())}

    def train_step(self, nets, batch, ctx) -> dict[str, float]:
        c = ctx.cfg.model
        inp, lab = mask_tokens(batch, c.mask_prob, ctx.generator, c.bert_replace)
        logits = nets["M"](inp)
        loss = balanced_loss(logits, lab, weight=ctx.balance_weight, target_gc=ctx.target_gc,
                             ref_freq=ctx.ref_freq, ignore_index=IGNORE)
        norm = ctx.optimize("g", loss)
        return {"loss": float(loss.detach()), "grad_norm": norm}

    def epoch_metrics(self, nets, ctx) -> dict[str, float]:
        out = {"peak_memory_mb": peak_memory_mb()}
        if ctx.val is not None and len(ctx.val):
            c = ctx.cfg.model
            M = nets["M"]
            was = M.training
            M.eval()
            x = ctx.val[: c.val_windows].to(ctx.device).long()
            acc, loss = masked_accuracy(M, x[:, : M.max_len], c.mask_prob, seed=ctx.cfg.train.seed)
            M.train(was)
            out.update(val_masked_acc=acc, val_masked_loss=loss)
        return out

    def infill(self, nets, codes, gaps, *, temperature=1.0, generator=None):
        M = nets["M"]
        dev = next(M.parameters()).device
        return infill(M, codes.to(dev), gaps.to(dev), temperature=temperature, generator=generator).cpu()

    @torch.no_grad()
    def sample(self, nets, n, length, *, temperature=1.0, generator=None, prompt=None):
        M = nets["M"]
        if length > M.max_len:
            raise ConfigError(f"the masked model was trained on {M.max_len} bp; it cannot generate {length} bp")
        dev = next(M.parameters()).device
        steps = M.gen_steps or length
        out = []
        for s in range(0, n, 1024):
            m = min(1024, n - s)
            tok = torch.full((m, length), MASK, dtype=torch.long, device=dev)
            if prompt is not None:
                p = min(int(prompt.numel()), length)
                tok[:, :p] = prompt[:p].to(dev)
            free = tok == MASK
            tok = unmask(M, tok, steps, temperature, generator, M.reveal, M.choice_noise)
            out.append(gibbs_refine(M, tok, free, M.gibbs_rounds, M.mask_prob, temperature, generator))
        return torch.cat(out)
