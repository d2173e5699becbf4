"""k-th order Markov chain: the honest baseline every other family is measured against.

P(x_t | x_{t-k..t-1}) from (k+1)-mer counts with add-`alpha` smoothing; the first k bases come from
the k-mer marginal. Trained through the same engine: each epoch recounts from the (bootstrap) data.

With ``model.period`` 3 and/or ``model.components`` > 1 the chain is a **phased mixture**, the
model of GeneMark-style gene finders (Borodovsky & McIninch 1993): each window is drawn from one of
``components`` chains, and each chain's transition depends on the position modulo ``period`` (the
codon position in a gene); which chain and which phase a window starts in are hidden, and fitted by
expectation-maximisation, one EM iteration an epoch (the E-step reads the last epoch's parameters,
the M-step counts with the posterior weights). It writes the codon periodicity a plain chain cannot,
in seconds, so it is the stronger baseline a learned model should also beat.

With ``model.hmm`` the mixture's hidden (chain, phase) may change at any base: a hidden Markov model
(``PhasedHMM``, Baum-Welch), so a long window can cross from a gene into the DNA beside it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from models.blocks import place_prompt
from models.registry import DataStats, Family, register
from utils.config import option
from utils.domains import Domain
from utils.errors import ConfigError


# the phased mixture the benchmarks and compare_models.py set beside markov-5 (chosen by held-out NLL, stop 45)
PHASED_SETS = ("model.period=3", "model.components=7")


@dataclass(frozen=True)
class MarkovConfig:
    order: int = option(5, "markov: context length k", flag="--order",
                        domain=Domain("an integer from 0 to 10", int, lo=0, hi=10))
    alpha: float = 1.0  # add-alpha (Laplace) smoothing
    # the phased mixture (module docstring): transitions that depend on the position mod `period`
    # (3: codon position) and `components` chains, each window from one; EM, one iteration an epoch
    period: int = option(1, "markov: transitions depend on the position modulo this (3: codon position; "
                         "1: a plain chain)", domain=Domain("an integer from 1 to 12", int, lo=1, hi=12))
    components: int = option(1, "markov: chains in the mixture, each window drawn from one (fitted by EM)",
                             domain=Domain("an integer from 1 to 32", int, lo=1, hi=32))
    em_iters: int = 40  # epochs (EM iterations) of the phased mixture when --epochs is not given
    shrink: float = 32.0  # the phased mixture: pseudo-counts pulling each chain's transitions to the plain chain's
    # the phased mixture's order is the largest <= model.order that leaves this many training bases per
    # (state, (k+1)-mer) (0: model.order as given); chosen by held-out NLL on five genomes (docs/benchmarks.md)
    min_cell_bases: float = 50.0
    # the phased HMM: the hidden (chain, phase) may change at any base, not once a window
    hmm: bool = option(False, "markov: let the phased mixture's hidden (chain, phase) change at any base, a hidden "
                       "Markov model with learned transitions (a gene may end inside a window; needs "
                       "model.period > 1 or model.components > 1)")
    segment: float = 300.0  # the phased HMM's prior: mean bases before a switch, one pseudo-switch per state

    def for_data(self, n_bases: int):
        """The phased mixture has period x components states, each with 4^(k+1) transition counts:
        below min_cell_bases training bases per count its order comes down (a plain chain is left as
        it is). Measured (held-out NLL, stop 45): order 5 is best on none of five genomes; S. suis
        (1.7 Mb of training windows) is best at 4, phage T4 (135 kb) and the human stretches at 2-3."""
        if not self.phased or self.min_cell_bases <= 0:
            return self, None
        states, k = self.period * self.components, self.order
        while k > 0 and n_bases / (states * 4 ** (k + 1)) < self.min_cell_bases:
            k -= 1
        if k == self.order:
            return self, None
        return dataclasses.replace(self, order=k), (
            f"model.order {self.order} -> {k}: {n_bases:,} training bases for {states} states x 4^{k + 1} "
            f"transition counts, at least model.min_cell_bases ({self.min_cell_bases:g}) each")

    @property
    def phased(self) -> bool:
        return self.period > 1 or self.components > 1

    def validate(self):
        if self.alpha < 0:
            raise ConfigError(f"model.alpha must be >= 0, got {self.alpha}")
        if self.phased and self.alpha <= 0:
            raise ConfigError("model.alpha must be > 0 for the phased mixture (an unseen context would have no "
                              "probability under any chain)")
        if self.phased and self.shrink <= 0:
            raise ConfigError(f"model.shrink must be > 0 for the phased mixture (a context a chain never saw has "
                              f"no other estimate), got {self.shrink}")
        if self.min_cell_bases < 0:
            raise ConfigError(f"model.min_cell_bases must be >= 0, got {self.min_cell_bases}")
        if self.hmm and not self.phased:
            raise ConfigError("model.hmm needs hidden states to switch between: set model.period > 1 (e.g. 3, the "
                              "codon position) or model.components > 1")
        if self.hmm and self.segment <= 1:
            raise ConfigError(f"model.segment must be > 1 (bases), got {self.segment}")
        if self.em_iters < 1:
            raise ConfigError(f"model.em_iters must be >= 1, got {self.em_iters}")


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


class PhasedMixture(nn.Module):
    """``components`` chains of order k whose transitions depend on the position modulo ``period``;
    each window is drawn from one chain, starting in one phase (the hidden state z = (chain, phase)).

    Buffers: ``counts`` (K, P, 4^(k+1)), ``starts`` (K, P, 4^k) and ``mix`` (K, P) are the posterior-
    weighted counts of this epoch's M-step (summed over torchrun ranks), and after the epoch the
    parameters; ``prev`` holds the last epoch's counts, which this epoch's E-step reads. A window's
    phase at position t is (t + phase) mod P."""

    def __init__(self, order: int, alpha: float, period: int, components: int, shrink: float):
        super().__init__()
        self.order, self.alpha, self.period, self.components = order, alpha, period, components
        self.shrink = shrink
        K, P, V = components, period, 4 ** (order + 1)
        self.register_buffer("counts", torch.zeros(K, P, V, dtype=torch.float64))
        self.register_buffer("starts", torch.zeros(K, P, V // 4, dtype=torch.float64))
        self.register_buffer("mix", torch.zeros(K, P, dtype=torch.float64))
        self.register_buffer("prev", torch.zeros(K, P, V, dtype=torch.float64))
        self.register_buffer("prev_mix", torch.zeros(K, P, dtype=torch.float64))

    kmer_index = MarkovChain.kmer_index

    @property
    def fitted(self) -> bool:
        return bool(self.mix.sum() > 0)

    def new_iteration(self) -> None:
        """Start an EM iteration: the counts of the last one become the E-step's parameters."""
        if self.fitted:
            self.prev.copy_(self.counts)
            self.prev_mix.copy_(self.mix)
        for b in (self.counts, self.starts, self.mix):
            b.zero_()

    def log_transition(self, counts: torch.Tensor) -> torch.Tensor:
        """(K, P, 4^(k+1)) log P(base | context, chain, phase): each chain's counts shrunk towards the
        plain chain (all states' counts pooled, add-alpha smoothed) with ``shrink`` pseudo-counts, so
        a context a chain rarely saw falls back on the plain chain's transition."""
        c = counts.view(self.components, self.period, -1, 4)
        pooled = c.sum((0, 1)) + self.alpha
        prior = pooled / pooled.sum(-1, keepdim=True)
        c = c + self.shrink * prior
        return torch.log(c / c.sum(-1, keepdim=True)).view(self.components, self.period, -1)

    def log_mix(self, mix: torch.Tensor) -> torch.Tensor:
        m = mix + 1e-3 * float(mix.sum().clamp_min(1.0)) / mix.numel()  # no state's weight reaches 0
        return torch.log(m / m.sum())

    def _by_phase(self, x: torch.Tensor):
        """Yields (indices of the (k+1)-mers ending at positions t = r mod P, r) for each residue r."""
        k, P = self.order, self.period
        f = self.kmer_index(x, k + 1)  # (B, L-k): the (k+1)-mer ending at t = k + i
        r = (torch.arange(f.shape[1], device=x.device) + k) % P
        for rr in range(P):
            yield f[:, r == rr], rr

    def state_loglik(self, x: torch.Tensor, counts: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        """(B, K, P): log prior(z) + log P(x_k..x_{L-1} | x_0..x_{k-1}, z) for every hidden state z."""
        logT = self.log_transition(counts)
        B, K, P = x.shape[0], self.components, self.period
        ll = torch.zeros(B, K, P, dtype=torch.float64, device=x.device)
        for cols, rr in self._by_phase(x):
            for p in range(P):  # positions of residue rr are in phase p when the window's phase is p - rr
                ll[:, :, (p - rr) % P] += logT[:, p][:, cols].sum(-1).T
        return ll + self.log_mix(mix)

    def add_counts(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One E-step and the M-step's counts for windows x; returns their log-likelihood per window
        under the E-step's parameters (uniform in the first iteration, whose posteriors are random)."""
        k, K, P, V = self.order, self.components, self.period, 4 ** (self.order + 1)
        B = x.shape[0]
        if x.shape[1] <= k or not B:
            return x.new_zeros(B, dtype=torch.float64)
        if self.prev_mix.sum() > 0:
            ll = self.state_loglik(x, self.prev, self.prev_mix)
            lse = torch.logsumexp(ll.view(B, -1), 1)
            post = torch.exp(ll - lse[:, None, None])
        else:  # the first iteration: each window in one random state breaks the symmetry between them
            z = torch.randint(K * P, (B,), generator=generator, device=generator.device if generator else None)
            post = torch.nn.functional.one_hot(z.to(x.device), K * P).to(torch.float64).view(B, K, P)
            lse = x.new_full((B,), -(x.shape[1] - k) * math.log(4), dtype=torch.float64)
        chains = torch.arange(K, device=x.device)[:, None, None]
        for cols, rr in self._by_phase(x):
            for p in range(P):
                w = post[:, :, (p - rr) % P].T[:, :, None].expand(K, B, cols.shape[1])
                idx = (chains * P + p) * V + cols[None]
                self.counts.view(-1).index_add_(0, idx.reshape(-1), w.reshape(-1))
        first = self.kmer_index(x[:, :k], k).squeeze(1) if k else x.new_zeros(B, dtype=torch.long)
        states = torch.arange(K * P, device=x.device)[:, None] * (4 ** k)  # the (state, first k-mer) cells
        self.starts.view(-1).index_add_(0, (states + first[None]).reshape(-1), post.view(B, -1).T.reshape(-1))
        self.mix += post.sum(0)
        return lse

    def loglik(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) log P(x_k.. | x_..k) of windows under the fitted mixture."""
        return torch.logsumexp(self.state_loglik(x, self.counts, self.mix).view(x.shape[0], -1), 1)

    def sample(self, n, length, *, temperature, generator, prompt) -> torch.Tensor:
        k, K, P = self.order, self.components, self.period
        dev = self.counts.device
        out = torch.empty(n, length, dtype=torch.long, device=dev)
        p_len = place_prompt(out, prompt)
        # the hidden state: from the mixture weights, or, given a prompt, from its posterior
        prior = self.log_mix(self.mix).view(-1)
        if p_len > k:
            prior = self.state_loglik(out[:1, :p_len], self.counts, self.mix).view(-1)
        z = torch.multinomial(torch.softmax(prior, 0).float().expand(n, -1), 1, generator=generator).squeeze(1)
        chain, phase = z // P, z % P
        trans = _tempered(torch.exp(self.log_transition(self.counts)).view(K, P, -1, 4), temperature).float()
        start = p_len
        if p_len < k:  # the first k bases from the state's start k-mers that extend the prompt
            marg = _tempered(self.starts + self.alpha / 4, temperature).float()[chain, phase]
            marg = marg * _extending(prompt, p_len, k, dev)
            first = torch.multinomial(marg, 1, generator=generator).squeeze(1)
            _write_kmers(out, first, k)
            start = k
        for t in range(start, length):
            ctx_idx = self.kmer_index(out[:, t - k : t], k).squeeze(1) if k else torch.zeros_like(chain)
            probs = trans[chain, (t + phase) % P, ctx_idx]
            out[:, t] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return out


class PhasedHMM(PhasedMixture):
    """The phased mixture with a hidden state at every base: z_t = (chain, codon position) advances one
    phase a base inside its chain and may switch to any state, with learned probabilities (a hidden
    Markov model: the structure of GeneMark.hmm-style gene finders, without their explicit lengths),
    so a window may cross a gene's end. Emissions are the mixture's phased order-k transitions; EM is
    Baum-Welch, one iteration an epoch. Beside the mixture's buffers: ``trans`` (S, S), the expected
    transition counts (S = components x period states, s = chain x period + phase), and
    ``prev_trans``; ``mix`` is the state distribution at a window's first base with a full context
    (position k), ``starts`` the first k bases by that state."""

    def __init__(self, order: int, alpha: float, period: int, components: int, shrink: float, segment: float):
        super().__init__(order, alpha, period, components, shrink)
        self.segment = segment
        S = components * period
        self.register_buffer("trans", torch.zeros(S, S, dtype=torch.float64))
        self.register_buffer("prev_trans", torch.zeros(S, S, dtype=torch.float64))
        self._scratch: dict[str, torch.Tensor] = {}  # forward-backward's (T, B, S) work space, reused

    def scratch(self, name: str, shape, like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` in storage kept from the last batch: the pages of a
        fresh 85 MB tensor cost more to touch than the work done in them. Views of it are valid until
        the next forward pass."""
        n, buf = math.prod(shape), self._scratch.get(name)
        if buf is None or buf.numel() < n or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._scratch[name] = torch.empty(n, dtype=like.dtype, device=like.device)
        return buf[:n].view(shape)

    @property
    def n_states(self) -> int:
        return self.components * self.period

    def advance(self, device) -> torch.Tensor:
        """(S,) each state's successor inside its chain: the next codon position."""
        s = torch.arange(self.n_states, device=device)
        return s - s % self.period + (s % self.period + 1) % self.period

    def new_iteration(self) -> None:
        if self.fitted:
            self.prev_trans.copy_(self.trans)
        super().new_iteration()
        self.trans.zero_()

    def log_trans(self, counts: torch.Tensor) -> torch.Tensor:
        """(S, S) log P(z_t+1 | z_t) from expected counts, with a prior of ``segment`` bases on average
        in a chain: segment - 1 pseudo-counts on the successor, one pseudo-switch spread over the rest."""
        S, dev = self.n_states, counts.device
        prior = torch.full((S, S), 1.0 / max(S - 1, 1), dtype=torch.float64, device=dev)
        prior[torch.arange(S, device=dev), self.advance(dev)] = self.segment - 1
        c = counts + prior
        return torch.log(c / c.sum(1, keepdim=True))

    def _forward(self, x: torch.Tensor, counts, mix, trans, idx: torch.Tensor | None = None):
        """The scaled forward pass over windows x (positions k..L-1), time-major so that each step
        reads and writes contiguous (B, S) slices: E (T, B, S) emission probabilities over each
        position's largest, A (S, S), alpha (T, B, S) the filtered state posteriors, c (T, B) the
        scales, and the windows' log-likelihoods (B,). The (T, B, S) tensors are few and written in
        place: at 500 bp each is 85 MB a batch of 1,024, and fresh pages cost as much as the loop.
        idx: x's (T, B) (k+1)-mer indices, where the caller has them."""
        S = self.n_states
        idx = self.kmer_index(x, self.order + 1).T if idx is None else idx
        logT = self.log_transition(counts).view(S, -1).T.contiguous()
        E = self.scratch("E", (*idx.shape, S), logT)
        torch.index_select(logT, 0, idx.reshape(-1), out=E.view(-1, S))
        shift = E.max(2, keepdim=True).values
        E.sub_(shift).exp_()
        A = torch.exp(self.log_trans(trans))
        alpha, c = self.scratch("alpha", E.shape, E), torch.empty(E.shape[:2], dtype=E.dtype, device=E.device)
        torch.mul(torch.exp(self.log_mix(mix)).view(1, -1), E[0], out=alpha[0])
        for t in range(E.shape[0]):
            if t:
                torch.mul(alpha[t - 1] @ A, E[t], out=alpha[t])
            torch.sum(alpha[t], 1, out=c[t])
            alpha[t].div_(c[t].unsqueeze(1))
        return E, A, alpha, c, torch.log(c).sum(0) + shift.sum((0, 2))

    def _backward(self, E, A, alpha, c):
        """Posteriors from the forward pass: gamma (T, B, S) per position, and the expected transition
        counts (S, S) summed over windows and positions. The loop carries only beta; the products
        over positions are whole-tensor operations after it. E and alpha are overwritten (gamma is
        alpha's storage)."""
        G = E[1:].div_(c[1:].unsqueeze(2))  # (T-1, B, S): each step's emission over its scale
        beta = self.scratch("beta", alpha.shape, alpha)
        beta[-1] = 1.0
        At = A.T.contiguous()
        for t in range(E.shape[0] - 2, -1, -1):
            G[t].mul_(beta[t + 1])  # now E_t+1 beta_t+1 / c_t+1
            torch.mm(G[t], At, out=beta[t])
        S = A.shape[0]
        xi = alpha[:-1].reshape(-1, S).T @ G.reshape(-1, S)
        return alpha.mul_(beta), xi * A

    def add_counts(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One Baum-Welch E-step and the M-step's counts for windows x; returns their log-likelihood
        under the E-step's parameters (the first iteration: each window in one random chain and phase)."""
        k, S, P = self.order, self.n_states, self.period
        B = x.shape[0]
        if x.shape[1] <= k or not B:
            return x.new_zeros(B, dtype=torch.float64)
        T, idx = x.shape[1] - k, self.kmer_index(x, k + 1).T  # (T, B)
        if self.prev_mix.sum() > 0:
            E, A, alpha, c, lse = self._forward(x, self.prev, self.prev_mix, self.prev_trans, idx)
            gamma, xi = self._backward(E, A, alpha, c)
        else:  # as the mixture's first iteration: one random chain per window, its phase advancing
            s0 = torch.randint(S, (B,), generator=generator, device=generator.device if generator else None)
            s0 = s0.to(x.device)[:, None]
            states = s0 - s0 % P + (s0 % P + torch.arange(T, device=x.device)) % P
            gamma = torch.nn.functional.one_hot(states.T, S).to(torch.float64)  # (T, B, S)
            xi = gamma[:-1].reshape(-1, S).T @ gamma[1:].reshape(-1, S)
            lse = x.new_full((B,), -T * math.log(4), dtype=torch.float64)
        by_kmer = gamma.new_zeros(4 ** (k + 1), S)  # the posteriors summed per (k+1)-mer, S at a time
        by_kmer.index_add_(0, idx.reshape(-1), gamma.reshape(-1, S))
        self.counts.view(S, -1).add_(by_kmer.T)
        first = self.kmer_index(x[:, :k], k).squeeze(1) if k else x.new_zeros(B, dtype=torch.long)
        cells = torch.arange(S, device=x.device)[:, None] * 4**k + first[None]
        self.starts.view(-1).index_add_(0, cells.reshape(-1), gamma[0].T.reshape(-1))
        self.mix.view(-1).add_(gamma[0].sum(0))
        self.trans += xi
        return lse

    def loglik(self, x: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """(B,) log P(x_k.. | x_..k) of windows under the fitted HMM (forward pass, in chunks)."""
        return torch.cat([self._forward(x[i : i + chunk], self.counts, self.mix, self.trans)[-1]
                          for i in range(0, x.shape[0], chunk)])

    def sample(self, n, length, *, temperature, generator, prompt) -> torch.Tensor:
        k, S = self.order, self.n_states
        dev = self.counts.device
        out = torch.empty(n, length, dtype=torch.long, device=dev)
        p_len = place_prompt(out, prompt)
        emit = _tempered(torch.exp(self.log_transition(self.counts)).view(S, -1, 4), temperature).float()
        A = torch.exp(self.log_trans(self.trans))
        if p_len > k:  # the state at the base after the prompt: the prompt's filtered posterior, one step on
            dist = self._forward(out[:1, :p_len], self.counts, self.mix, self.trans)[2][-1, 0] @ A
        else:  # the state at position k
            dist = torch.exp(self.log_mix(self.mix)).view(-1)
        z = torch.multinomial(dist.float().expand(n, -1), 1, generator=generator).squeeze(1)
        start, A = p_len, A.float()
        if p_len < k:  # the first k bases from the state's start k-mers that extend the prompt
            marg = _tempered(self.starts.view(S, -1) + self.alpha / 4, temperature).float()[z]
            first = torch.multinomial(marg * _extending(prompt, p_len, k, dev), 1, generator=generator).squeeze(1)
            _write_kmers(out, first, k)
            start = k
        for t in range(start, length):
            if t > start:
                z = torch.multinomial(A[z], 1, generator=generator).squeeze(1)
            ctx_idx = self.kmer_index(out[:, t - k : t], k).squeeze(1) if k else torch.zeros_like(z)
            out[:, t] = torch.multinomial(emit[z, ctx_idx], 1, generator=generator).squeeze(1)
        return out


def _extending(prompt, p_len: int, k: int, device) -> torch.Tensor:
    """(4^k,) 1 for the k-mers that begin with the prompt's first p_len bases (all ones without one)."""
    mask = torch.ones(4**k, device=device)
    if p_len:
        pidx = 0
        for b in prompt[:p_len].tolist():
            pidx = pidx * 4 + int(b)
        span = 4 ** (k - p_len)
        mask.zero_()
        mask[pidx * span : (pidx + 1) * span] = 1
    return mask


def _write_kmers(out: torch.Tensor, first: torch.Tensor, k: int) -> None:
    """Writes k-mers (one index per row of out) as out's first k bases, cut at its length."""
    digits = torch.stack([(first // 4 ** (k - 1 - j)) % 4 for j in range(k)], 1)
    kk = min(k, out.shape[1])
    out[:, :kk] = digits[:, :kk]


def _tempered(p: torch.Tensor, temperature: float) -> torch.Tensor:
    logp = torch.log(p.clamp_min(1e-300)) / max(temperature, 1e-6)
    return torch.softmax(logp, dim=-1)


@register("markov")
class Markov(Family):
    Config = MarkovConfig
    select_by = "val_nll"
    # under torchrun each rank counts its own shard (the phased mixture: its posterior-weighted counts)
    summed_buffers = ("counts", "starts", "mix", "trans")
    labelled = True  # one chain per label beside the pooled one
    balances_labels = False  # counts are exact: each window once, whatever train.label_balance says

    def build(self, cfg, stats: DataStats) -> nn.ModuleDict:
        c = cfg.model

        def make() -> nn.Module:
            if c.hmm:
                return PhasedHMM(c.order, c.alpha, c.period, c.components, c.shrink, c.segment)
            if c.phased:
                return PhasedMixture(c.order, c.alpha, c.period, c.components, c.shrink)
            return MarkovChain(c.order, c.alpha)

        nets = {"chain": make()}
        nets.update({f"label{i}": make() for i in range(len(stats.label_names))})
        return nn.ModuleDict(nets)

    def plan(self, cfg):
        """One epoch counts the plain chain; the phased mixture takes model.em_iters EM iterations."""
        from train.schedule import Plan

        if cfg.model.phased:
            return Plan.single(cfg.model.em_iters, "em")
        return Plan.single(1)

    def on_epoch_start(self, nets, ctx) -> None:
        for chain in nets.values():
            if isinstance(chain, PhasedMixture):
                chain.new_iteration()  # the last epoch's counts become the E-step's parameters
            else:
                chain.counts.zero_()  # an epoch is one full count of the (bootstrap) data

    def train_step(self, nets, batch, ctx) -> dict[str, float]:
        chain = nets["chain"]
        if isinstance(chain, PhasedMixture):
            lse = chain.add_counts(batch, ctx.generator)
            if ctx.batch_labels is not None:
                for i in range(len(nets) - 1):
                    nets[f"label{i}"].add_counts(batch[ctx.batch_labels == i], ctx.generator)
            # the batch's NLL per base under the E-step's parameters (EM's objective, falling)
            return {"nll": -lse.sum() / max(lse.numel() * (batch.shape[1] - chain.order), 1)}
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
        if isinstance(chain, PhasedMixture):  # the mixture's likelihood of each window's bases after the k-th
            return {"val_nll": float(-chain.loglik(x).sum() / (x.shape[0] * (x.shape[1] - k)))}
        logp = torch.log(chain.transition().view(-1))[chain.kmer_index(x, k + 1)]
        return {"val_nll": float(-logp.mean())}

    @torch.no_grad()
    def sample(self, nets, n, length, *, temperature=1.0, generator=None, prompt=None, label=None):
        chain = nets["chain"] if label is None else nets[f"label{label}"]
        if isinstance(chain, PhasedMixture):
            return chain.sample(n, length, temperature=temperature, generator=generator, prompt=prompt)
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
            marg = _tempered(chain.marginal(), temperature).float() * _extending(prompt, p_len, k, dev)
            first = torch.multinomial(marg.expand(n, -1), 1, generator=generator).squeeze(1)
            _write_kmers(out, first, k)
            start = k
        for t in range(start, length):
            ctx_idx = chain.kmer_index(out[:, t - k : t], k).squeeze(1)
            out[:, t] = torch.multinomial(trans[ctx_idx], 1, generator=generator).squeeze(1)
        return out
