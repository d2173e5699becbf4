"""k-th order Markov chain: the honest baseline every other family is measured against.

P(x_t | x_{t-k..t-1}) from (k+1)-mer counts with add-`alpha` smoothing; the first k bases come from
the k-mer marginal. Trained through the same engine: each epoch recounts from the (bootstrap) data.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.blocks import place_prompt
from models.registry import DataStats, Family, register
from utils.config import option
from utils.domains import Domain
from utils.errors import ConfigError


@dataclass(frozen=True)
class MarkovConfig:
    order: int = option(5, "markov: context length k", flag="--order",
                        domain=Domain("an integer from 0 to 10", int, lo=0, hi=10))
    alpha: float = 1.0  # add-alpha (Laplace) smoothing

    def validate(self):
        if self.alpha < 0:
            raise ConfigError(f"model.alpha must be >= 0, got {self.alpha}")


class MarkovChain(nn.Module):
    def __init__(self, order: int, alpha: float):
        super().__init__()
        self.order, self.alpha = order, alpha
        self.register_buffer("counts", torch.zeros(4 ** (order + 1), dtype=torch.float64))

    def kmer_index(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """(B, L) codes -> (B, L-k+1) indices of the k-mers starting at each position."""
        L = x.shape[1]
        idx = torch.zeros(x.shape[0], L - k + 1, dtype=torch.long, device=x.device)
        for j in range(k):  # k is small; the work is vectorised over batch and positions
            idx = idx * 4 + x[:, j : L - k + 1 + j].long()
        return idx

    def add_counts(self, x: torch.Tensor) -> None:
        k1 = self.order + 1
        if x.shape[1] < k1:
            return
        idx = self.kmer_index(x, k1).reshape(-1)
        self.counts += torch.bincount(idx, minlength=self.counts.numel()).to(self.counts.dtype)

    def transition(self) -> torch.Tensor:
        """(4^k, 4) conditional probabilities."""
        c = self.counts.view(-1, 4) + self.alpha
        return c / c.sum(1, keepdim=True).clamp_min(1e-300)

    def marginal(self) -> torch.Tensor:
        """(4^k,) distribution of k-mers, for the first k bases."""
        m = self.counts.view(-1, 4).sum(1) + self.alpha
        return m / m.sum()


def _tempered(p: torch.Tensor, temperature: float) -> torch.Tensor:
    logp = torch.log(p.clamp_min(1e-300)) / max(temperature, 1e-6)
    return torch.softmax(logp, dim=-1)


@register("markov")
class Markov(Family):
    Config = MarkovConfig
    select_by = "val_nll"
    summed_buffers = ("counts",)  # under torchrun each rank counts its own shard
    labelled = True  # one chain per label beside the pooled one
    balances_labels = False  # counts are exact: each window once, whatever train.label_balance says

    def build(self, cfg, stats: DataStats) -> nn.ModuleDict:
        c = cfg.model
        nets = {"chain": MarkovChain(c.order, c.alpha)}
        nets.update({f"label{i}": MarkovChain(c.order, c.alpha) for i in range(len(stats.label_names))})
        return nn.ModuleDict(nets)

    def on_epoch_start(self, nets, ctx) -> None:
        for chain in nets.values():
            chain.counts.zero_()  # an epoch is one full count of the (bootstrap) data

    def train_step(self, nets, batch, ctx) -> dict[str, float]:
        chain = nets["chain"]
        chain.add_counts(batch)
        if ctx.batch_labels is not None:
            for i in range(len(nets) - 1):
                nets[f"label{i}"].add_counts(batch[ctx.batch_labels == i])
        # Report the batch's negative log-likelihood per base under the current counts.
        k = chain.order
        if batch.shape[1] <= k:
            return {"nll": float("nan")}
        idx = chain.kmer_index(batch, k + 1)
        logp = torch.log(chain.transition().view(-1))[idx]
        return {"nll": -logp.mean()}

    @torch.no_grad()
    def evaluate(self, nets, ctx) -> dict[str, float]:
        """Held-out NLL per base of the positions with a full context (the first k bases of a window
        come from the k-mer marginal)."""
        chain, k = nets["chain"], nets["chain"].order
        if ctx.val is None or not ctx.val.shape[0] or ctx.val.shape[1] <= k:
            return {}
        x = ctx.val[:20000].to(chain.counts.device).long()
        logp = torch.log(chain.transition().view(-1))[chain.kmer_index(x, k + 1)]
        return {"val_nll": float(-logp.mean())}

    @torch.no_grad()
    def sample(self, nets, n, length, *, temperature=1.0, generator=None, prompt=None, label=None):
        chain = nets["chain"] if label is None else nets[f"label{label}"]
        k = chain.order
        dev = chain.counts.device
        out = torch.empty(n, length, dtype=torch.long, device=dev)
        trans = _tempered(chain.transition(), temperature).float()
        p_len = place_prompt(out, prompt)
        if k == 0:
            probs = trans[0].expand(n, 4)
            for t in range(p_len, length):
                out[:, t] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            return out
        start = p_len
        if p_len < k:
            # First k bases from the k-mer marginal, restricted to k-mers that extend the prompt.
            marg = _tempered(chain.marginal(), temperature).float()
            if p_len:
                pidx = 0
                for b in prompt[:p_len].tolist():
                    pidx = pidx * 4 + int(b)
                span = 4 ** (k - p_len)
                mask = torch.zeros_like(marg)
                mask[pidx * span : (pidx + 1) * span] = 1
                marg = marg * mask
            first = torch.multinomial(marg.expand(n, -1), 1, generator=generator).squeeze(1)
            digits = [(first // 4 ** (k - 1 - j)) % 4 for j in range(k)]
            kk = min(k, length)
            out[:, :kk] = torch.stack(digits, 1)[:, :kk]
            start = k
        for t in range(start, length):
            ctx_idx = chain.kmer_index(out[:, t - k : t], k).squeeze(1)
            out[:, t] = torch.multinomial(trans[ctx_idx], 1, generator=generator).squeeze(1)
        return out
