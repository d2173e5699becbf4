"""Long-range structure that no short Markov chain has: codon periodicity and open reading frames.

Both are per-sequence statistics, compared between a generated set and real held-out windows by
their means and a two-sample KS test, as analysis/report.py and the benchmarks report them.

- ``period3_power``: the power of the base-indicator sequences at period 3, the Fourier signature
  of protein-coding DNA (codon position bias; Tiwari et al. 1997, Anastassiou 2001). For each
  sequence, P3 = sum over bases b of |sum_n u_b(n) e^(-2 pi i n / 3)|^2 / L, where u_b is the
  indicator of base b. By Parseval the mean of this power over all frequencies is 1, so P3 is the
  period-3 power relative to the sequence's average: 1 - sum_b p_b^2 (0.75 at equal base
  frequencies) expected for a sequence with no codon structure, larger in coding DNA. It does not
  depend on where the reading frame starts.
- ``longest_orf``: the longest open reading frame per sequence, in bases, over both strands and
  three frames: an ATG and the codons after it up to the first in-frame stop (TAA, TAG, TGA),
  or up to the window's end when the window cuts the ORF (as a window of a genome does).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp

from analysis.metrics import as_codes
from utils.sequences import reverse_complement

# codon index = 16*first + 4*second + third with A=0 C=1 G=2 T=3
TAA, TAG, TGA, ATG = 3 * 16 + 0 + 0, 3 * 16 + 0 + 2, 3 * 16 + 8 + 0, 0 + 3 * 4 + 2
STOP_CODONS = (TAA, TAG, TGA)


def period3_power(x) -> np.ndarray:
    """(N,) period-3 Fourier power of each sequence relative to its mean spectral power (~0.75 = none)."""
    x = as_codes(x)
    n, L = x.shape
    if L < 3:
        return np.full(n, np.nan)
    w = np.exp(-2j * np.pi * np.arange(L) / 3)  # (L,)
    power = np.zeros(n)
    for b in range(4):
        power += np.abs((x == b) @ w) ** 2
    return power / L


def _orf_lengths_one_strand(x: np.ndarray) -> np.ndarray:
    """(N,) longest ATG-initiated ORF (bases, stop codon excluded) over the 3 frames of one strand."""
    n, L = x.shape
    best = np.zeros(n, dtype=np.int64)
    for f in range(3):
        m = (L - f) // 3
        if m < 1:
            continue
        c = x[:, f : f + 3 * m].reshape(n, m, 3).astype(np.int64)
        codon = c[:, :, 0] * 16 + c[:, :, 1] * 4 + c[:, :, 2]  # (N, m)
        stop = np.isin(codon, STOP_CODONS)
        pos = np.where(stop, np.arange(m), m)  # index of the stop, m where none
        next_stop = np.minimum.accumulate(pos[:, ::-1], axis=1)[:, ::-1]  # first stop at or after each codon
        length = np.where(codon == ATG, next_stop - np.arange(m), 0)  # codons from the ATG to the stop (or end)
        best = np.maximum(best, length.max(axis=1) * 3)
    return best


def longest_orf(x) -> np.ndarray:
    """(N,) longest open reading frame per sequence in bases, both strands, three frames each."""
    x = as_codes(x)
    return np.maximum(_orf_lengths_one_strand(x), _orf_lengths_one_strand(reverse_complement(x)))


def structure_row(gen, ref) -> dict:
    """Periodicity and ORF statistics of gen beside the real reference's, with KS distances.

    period3_gap is |mean P3 (gen) - mean P3 (real)|; orf_ks the KS statistic of the longest-ORF
    distributions (0 = same distribution)."""
    gen, ref = as_codes(gen), as_codes(ref)
    p_g, p_r = period3_power(gen), period3_power(ref)
    o_g, o_r = longest_orf(gen), longest_orf(ref)
    row = {
        "period3": float(np.nanmean(p_g)),
        "period3_ref": float(np.nanmean(p_r)),
        "period3_gap": float(abs(np.nanmean(p_g) - np.nanmean(p_r))),
        "orf_longest_mean": float(o_g.mean()),
        "orf_longest_mean_ref": float(o_r.mean()),
    }
    if gen.shape[0] and ref.shape[0]:
        row["period3_ks"] = float(ks_2samp(p_g, p_r).statistic)
        ks = ks_2samp(o_g, o_r)
        row["orf_ks"] = float(ks.statistic)
        row["orf_ks_pvalue"] = float(ks.pvalue)
    return row
