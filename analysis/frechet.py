"""Fréchet distance on learned embeddings: the DNA analogue of FID (the Fréchet BioDistance of the
sequence-design literature).

The encoder is a small dilated CNN trained self-supervised on the real *training* windows (never on
held-out ones): 15% of the bases are hidden and it predicts them from their context, 61 bases wide.
A sequence's embedding is the mean and the maximum over positions of its last hidden layer (128
numbers). The distance between two sets is the Fréchet distance of Gaussians fitted to their
embeddings, ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)); 0 = the same mean and spread.

The distance is biased upwards at small samples, so it is only read beside the real-vs-real floor
at the same sample size (training windows against held-out), and with a bootstrap interval.
Trained encoders are cached per reference (the training windows' hash and the encoder's settings)
under $DNAGAN_CACHE (default ~/.cache/dnagan), written atomically and loaded with weights_only.
"""
from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from analysis.metrics import as_codes
from utils.outputs import cache_dir, write_bytes

log = logging.getLogger(__name__)
MASK = 4  # the hidden-base token


@dataclass(frozen=True)
class EncoderSpec:
    channels: int = 64
    kernels: tuple = (5, 5, 5, 5)
    dilations: tuple = (1, 2, 4, 8)
    steps: int = 600  # at most; and at most `epochs` passes over small training sets (at least 50 steps)
    epochs: int = 20
    batch: int = 128
    lr: float = 2e-3
    mask_rate: float = 0.15
    max_train: int = 50_000  # training windows the encoder sees at most

    @property
    def dim(self) -> int:
        return 2 * self.channels


class Encoder(torch.nn.Module):
    def __init__(self, spec: EncoderSpec):
        super().__init__()
        self.embed = torch.nn.Embedding(5, spec.channels)
        layers = []
        for k, d in zip(spec.kernels, spec.dilations):
            layers += [torch.nn.Conv1d(spec.channels, spec.channels, k, dilation=d, padding=d * (k - 1) // 2),
                       torch.nn.ReLU()]
        self.conv = torch.nn.Sequential(*layers)
        self.head = torch.nn.Conv1d(spec.channels, 4, 1)

    def hidden(self, x):  # (B, L) tokens -> (B, C, L)
        return self.conv(self.embed(x).transpose(1, 2))

    def forward(self, x):  # (B, L) tokens -> (B, 4, L) logits of the bases
        return self.head(self.hidden(x))

    def embed_codes(self, x):  # (B, L) codes -> (B, 2C)
        h = self.hidden(x)
        return torch.cat([h.mean(2), h.amax(2)], 1)


def _cache_dir() -> Path:
    return cache_dir("frechet")


def _key(train: np.ndarray, spec: EncoderSpec, seed: int) -> str:
    h = hashlib.sha256(np.ascontiguousarray(train, dtype=np.uint8).tobytes())
    h.update(repr((sorted(asdict(spec).items()), seed, train.shape)).encode())
    return h.hexdigest()[:24]


def fit_encoder(train, spec: EncoderSpec = EncoderSpec(), *, seed: int = 0, cache: bool = True,
                progress: bool = True) -> Encoder:
    """The encoder for these training windows: from the cache when it was trained before."""
    train = as_codes(train)
    rng = np.random.default_rng(seed)
    if train.shape[0] > spec.max_train:
        train = train[np.sort(rng.choice(train.shape[0], spec.max_train, replace=False))]
    path = _cache_dir() / f"{_key(train, spec, seed)}.pt"
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # the CPU's only: torch.manual_seed reseeds CUDA too
        net = Encoder(spec)  # the same initial weights for the same seed, whatever ran before
        if cache and path.exists():
            try:
                net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
                return net.eval()
            except Exception as e:  # a damaged cache file is retrained, never trusted
                log.warning("warning: retraining the encoder: %s is damaged (%s)", path, type(e).__name__)
        X = torch.from_numpy(train.astype(np.int64))
        opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
        g = torch.Generator().manual_seed(seed)
        steps = min(spec.steps, max(50, -(-spec.epochs * X.shape[0] // spec.batch)))
        for _ in tqdm(range(steps), desc="Fréchet encoder", disable=None if progress else True, leave=False):
            x = X[torch.randint(0, X.shape[0], (spec.batch,), generator=g)]
            hide = torch.rand(x.shape, generator=g) < spec.mask_rate
            logits = net(x.masked_fill(hide, MASK))  # (B, 4, L)
            loss = F.cross_entropy(logits.transpose(1, 2)[hide], x[hide])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    if cache:
        buf = io.BytesIO()
        torch.save(net.state_dict(), buf)
        write_bytes(path, buf.getbuffer())
    return net


@torch.no_grad()
def embed(net: Encoder, x, batch: int = 1024) -> np.ndarray:
    """(N, dim) float64 embeddings of (N, L) codes."""
    X = torch.from_numpy(as_codes(x).astype(np.int64))
    out = [net.embed_codes(X[s : s + batch]) for s in range(0, X.shape[0], batch)]
    return torch.cat(out).double().numpy() if out else np.zeros((0, net.head.in_channels * 2))


def _sqrt_psd(S: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh(S)
    return (V * np.sqrt(np.clip(w, 0, None))) @ V.T


def frechet_from_stats(mu_a, S_a, mu_b, S_b) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), the trace term through the symmetric
    form Tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)), which has the same eigenvalues and stays real."""
    r = _sqrt_psd(S_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(r @ S_b @ r), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(S_a) + np.trace(S_b) - 2 * cross)


def frechet(ea: np.ndarray, eb: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings (rows)."""
    return frechet_from_stats(ea.mean(0), np.cov(ea, rowvar=False), eb.mean(0), np.cov(eb, rowvar=False))


def frechet_interval(ea: np.ndarray, eb: np.ndarray, *, n_boot: int = 100, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval, both sets resampled with replacement. Resampling repeats rows, which
    inflates the distance (on lambda's 136 a side the bootstrap mean sat 0.2 above the estimate and
    the plain percentile interval excluded it), so the percentiles are shifted by the bootstrap's
    bias (mean of the replicates minus the estimate) and clipped at 0."""
    rng = np.random.default_rng(seed)
    vals = np.array([frechet(ea[rng.integers(0, len(ea), len(ea))], eb[rng.integers(0, len(eb), len(eb))])
                     for _ in range(n_boot)])
    bias = vals.mean() - frechet(ea, eb)
    lo, hi = np.percentile(vals, [2.5, 97.5]) - bias
    return float(max(lo, 0.0)), float(max(hi, 0.0))


def frechet_row(gen, ref, train, *, spec: EncoderSpec = EncoderSpec(), seed: int = 0, max_n: int = 10_000,
                n_boot: int = 100, progress: bool = True) -> dict:
    """fd (generated vs reference) and fd_floor (training windows vs reference, same sample size), each
    with a 95% bootstrap interval; the encoder is trained on (a sample of) ``train``."""
    gen, ref, train = as_codes(gen), as_codes(ref), as_codes(train)
    L = min(gen.shape[1], ref.shape[1], train.shape[1])
    gen, ref, train = gen[:, :L], ref[:, :L], train[:, :L]
    n = min(gen.shape[0], ref.shape[0], max_n)
    if n < 10 or train.shape[0] < 10:
        return {"fd": float("nan"), "fd_n": int(n)}
    rng = np.random.default_rng(seed)
    net = fit_encoder(train, spec, seed=seed, progress=progress)
    pick = lambda x, m: x[rng.choice(x.shape[0], m, replace=False)] if x.shape[0] > m else x  # noqa: E731
    e_ref = embed(net, pick(ref, n))
    e_gen = embed(net, pick(gen, n))
    e_train = embed(net, pick(train, n))
    lo, hi = frechet_interval(e_gen, e_ref, n_boot=n_boot, seed=seed)
    flo, fhi = frechet_interval(e_train, e_ref, n_boot=n_boot, seed=seed + 1)
    return {"fd": frechet(e_gen, e_ref), "fd_lo": lo, "fd_hi": hi,
            "fd_floor": frechet(e_train, e_ref), "fd_floor_lo": flo, "fd_floor_hi": fhi, "fd_n": int(n)}
