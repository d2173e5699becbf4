"""Counting baselines for masked-base prediction (pure numpy)."""
from __future__ import annotations

import numpy as np

from analysis.metrics import as_codes


def context_counts(segments, k: int) -> np.ndarray:
    """(4^k, 4, 4^k) counts of (left k bases, centre base, right k bases) over 1-D code segments."""
    counts = np.zeros(4 ** (2 * k + 1), dtype=np.int64)
    w = 2 * k + 1
    for seg in segments:
        s = np.asarray(seg).astype(np.int64)
        if s.size < w:
            continue
        idx = np.zeros(s.size - w + 1, dtype=np.int64)
        for j in range(w):
            idx = idx * 4 + s[j : s.size - w + 1 + j]
        counts += np.bincount(idx, minlength=counts.size)
    return counts.reshape(4**k, 4, 4**k)


def predict_masked(x, mask, tables: dict) -> np.ndarray:
    """Predict each masked base of windows x (N, L) from its unmasked neighbours.

    tables maps k -> context_counts(train, k) for k = 1..K. For each masked position the widest
    k <= K whose k bases on either side lie inside the window and are all unmasked is used (backing
    off to narrower contexts, and to the most frequent base at k = 0). Returns (N, L) predictions
    (meaningful at masked positions)."""
    x = as_codes(x).astype(np.int64)
    mask = np.asarray(mask, bool)
    N, L = x.shape
    K = max(tables) if tables else 0
    base_freq = tables[min(tables)].sum(axis=(0, 2)) if tables else np.ones(4)
    pred = np.full((N, L), int(np.argmax(base_freq)), dtype=np.int64)
    done = ~mask
    for k in range(K, 0, -1):
        t = tables[k]
        best = t.argmax(1)  # (4^k, 4^k)
        ok = mask & ~done
        ok[:, :k] = False
        ok[:, L - k :] = False
        free = ~mask
        for d in range(1, k + 1):  # neighbours within k on both sides unmasked
            left = np.zeros_like(free)
            left[:, d:] = free[:, :-d]
            right = np.zeros_like(free)
            right[:, :-d] = free[:, d:]
            ok &= left & right
        n_i, p_i = np.nonzero(ok)
        if n_i.size:
            lft = np.zeros(n_i.size, dtype=np.int64)
            rgt = np.zeros(n_i.size, dtype=np.int64)
            for j in range(k):
                lft = lft * 4 + x[n_i, p_i - k + j]
                rgt = rgt * 4 + x[n_i, p_i + 1 + j]
            seen = t[lft, :, rgt].sum(1) > 0
            pred[n_i[seen], p_i[seen]] = best[lft[seen], rgt[seen]]
            done[n_i[seen], p_i[seen]] = True
    return pred
