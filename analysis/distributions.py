"""Pure metrics for real-valued sequences (N, L): marginal distribution, temporal structure, diversity.

Used by the training monitor (continuous data), analyse_distributions.py and bench/signal_quality.py,
so every model and baseline is judged by the same code. scipy provides the statistics.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from analysis.metrics import js_divergence


def as_signals(x) -> np.ndarray:
    """Tensor or array -> 2-D float64 numpy array (a single sequence becomes one row)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    return x[None, :] if x.ndim == 1 else x


def ks(gen, real) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value of all values pooled."""
    r = stats.ks_2samp(as_signals(gen).ravel(), as_signals(real).ravel())
    return float(r.statistic), float(r.pvalue)


def wasserstein(gen, real) -> float:
    """1-Wasserstein (earth mover's) distance between the pooled value distributions."""
    return float(stats.wasserstein_distance(as_signals(gen).ravel(), as_signals(real).ravel()))


def js_histogram(gen, real, bins: int = 50) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of value histograms on shared bins spanning
    both sets."""
    g, r = as_signals(gen).ravel(), as_signals(real).ravel()
    lo, hi = min(g.min(), r.min()), max(g.max(), r.max())
    if hi <= lo:
        return 0.0
    edges = np.linspace(lo, hi, bins + 1)
    p = np.histogram(g, edges)[0].astype(np.float64)
    q = np.histogram(r, edges)[0].astype(np.float64)
    return js_divergence(p, q)


def autocorrelation(x, max_lag: int = 5) -> np.ndarray:
    """Mean within-sequence autocorrelation at lags 1..max_lag (each sequence centred on the pooled
    mean and scaled by the pooled variance, so flat sequences do not divide by zero)."""
    x = as_signals(x)
    xc = x - x.mean()
    var = (xc**2).mean()
    if var == 0:
        return np.zeros(max_lag)
    L = x.shape[1]
    return np.array([(xc[:, : L - k] * xc[:, k:]).mean() / var if k < L else np.nan
                     for k in range(1, max_lag + 1)])


def diversity(x, max_n: int = 1000, seed: int = 0) -> dict:
    """Mean pairwise Euclidean distance per position (on up to max_n sequences) and the fraction of
    distinct sequences (values rounded to 6 decimals)."""
    x = as_signals(x)
    rng = np.random.default_rng(seed)
    s = x[rng.choice(x.shape[0], min(max_n, x.shape[0]), replace=False)]
    sq = (s**2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * s @ s.T, 0)
    iu = np.triu_indices(s.shape[0], 1)
    mpd = float(np.sqrt(d2[iu]).mean() / np.sqrt(x.shape[1])) if iu[0].size else 0.0
    uniq = np.unique(np.round(x, 6), axis=0).shape[0] / max(x.shape[0], 1)
    return {"mean_pairwise_distance": mpd, "unique_fraction": float(uniq)}


def summary(x) -> dict:
    v = as_signals(x).ravel()
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max()),
            "median": float(np.median(v)), "skew": float(stats.skew(v)), "kurtosis": float(stats.kurtosis(v))}


def compare(gen, real, *, max_lag: int = 5, seed: int = 0) -> dict:
    """Every metric of generated vs real signals, as one flat row."""
    g, r = as_signals(gen), as_signals(real)
    ks_stat, ks_p = ks(g, r)
    acf_g, acf_r = autocorrelation(g, max_lag), autocorrelation(r, max_lag)
    row = {"n": int(g.shape[0]), "ks_statistic": ks_stat, "ks_pvalue": ks_p, "wasserstein": wasserstein(g, r),
           "js_histogram": js_histogram(g, r), "acf_mae": float(np.nanmean(np.abs(acf_g - acf_r)))}
    for k in range(max_lag):
        row[f"acf{k + 1}_gen"], row[f"acf{k + 1}_real"] = float(acf_g[k]), float(acf_r[k])
    sg, sr = summary(g), summary(r)
    row.update({f"{k}_gen": v for k, v in sg.items()})
    row.update({f"{k}_real": v for k, v in sr.items()})
    dg, dr = diversity(g, seed=seed), diversity(r, seed=seed)
    row.update({f"{k}_gen": v for k, v in dg.items()})
    row.update({f"{k}_real": v for k, v in dr.items()})
    return row


def fit_ar1(x) -> tuple[float, float, float]:
    """Gaussian AR(1) fit by least squares on consecutive pairs: (mean, phi, innovation std)."""
    x = as_signals(x)
    mu = float(x.mean())
    a, b = (x[:, :-1] - mu).ravel(), (x[:, 1:] - mu).ravel()
    phi = float((a * b).sum() / max((a * a).sum(), 1e-12))
    sigma = float(np.std(b - phi * a))
    return mu, phi, sigma


def sample_ar1(params, n: int, L: int, seed: int = 0) -> np.ndarray:
    """n sequences of length L from a stationary Gaussian AR(1) with (mean, phi, sigma)."""
    mu, phi, sigma = params
    rng = np.random.default_rng(seed)
    out = np.empty((n, L))
    stat_sd = sigma / np.sqrt(max(1 - phi**2, 1e-6))
    out[:, 0] = rng.normal(0, stat_sd, n)
    for t in range(1, L):
        out[:, t] = phi * out[:, t - 1] + rng.normal(0, sigma, n)
    return out + mu
