"""Memorisation at any length: the identity of each generated sequence to its nearest training window,
at every offset of the training segments and on either strand, through an exact k-mer seed index.

A window within Hamming distance m of a sequence of length L shares at least one of the
floor(L / k) non-overlapping k-mers of the sequence exactly whenever floor(L / k) > m (pigeonhole).
``KmerIndex.for_identity(segments, L, x)`` picks k so that every training window with identity >= x
is found; the windows that share a seed are then compared base by base. Identities below x are
lower bounds (the best window found, not necessarily the nearest). Used by the analysis report
(``near_copies``) and by ``--mode gen --max_identity X``.
"""
from __future__ import annotations

import math

import numpy as np

from analysis.metrics import as_codes
from utils.sequences import reverse_complement

MIN_K, MAX_K = 8, 31  # below 8 every seed hits thousands of windows; 31 bases fill a uint64


def _kmer_keys(seq: np.ndarray, k: int) -> np.ndarray:
    """(len - k + 1,) uint64 2-bit keys of every k-mer of a 1-D code array."""
    n = seq.shape[-1] - k + 1
    if n <= 0:
        return np.zeros(seq.shape[:-1] + (0,), np.uint64)
    s = seq.astype(np.uint64)
    key = np.zeros(seq.shape[:-1] + (n,), np.uint64)
    for j in range(k):
        key = (key << np.uint64(2)) | s[..., j : j + n]
    return key


def seed_k(length: int, min_identity: float) -> int:
    """The longest seed that still finds every window of identity >= min_identity (clamped to 8..31)."""
    m = math.floor((1.0 - min_identity) * length + 1e-9)  # mismatches allowed
    return int(min(MAX_K, max(MIN_K, length // (m + 1))))


class KmerIndex:
    """Sorted k-mer keys of every position of the training segments (forward strand)."""

    def __init__(self, segments, k: int):
        segs = [np.asarray(s, np.uint8) for s in segments if len(s) >= k]
        self.k = k
        self.seq = np.concatenate(segs) if segs else np.zeros(0, np.uint8)
        lens = np.array([len(s) for s in segs], np.int64)
        self.seg_end = np.cumsum(lens)
        self.seg_start = self.seg_end - lens
        keys = [_kmer_keys(s, k) for s in segs]
        pos = [np.arange(len(kk), dtype=np.int64) + st for kk, st in zip(keys, self.seg_start)]
        keys = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
        pos = np.concatenate(pos) if pos else np.zeros(0, np.int64)
        order = np.argsort(keys, kind="stable")
        self.keys, self.pos = keys[order], pos[order]

    @classmethod
    def for_identity(cls, segments, length: int, min_identity: float) -> "KmerIndex":
        return cls(segments, seed_k(length, min_identity))

    def guaranteed_identity(self, length: int) -> float:
        """Every training window at or above this identity is found for sequences of this length."""
        seeds = length // self.k
        return 1.0 - (seeds - 1) / length if seeds >= 1 else 1.0

    def _best(self, x: np.ndarray, chunk: int) -> np.ndarray:
        n, L = x.shape
        best = np.zeros(n)
        if not self.keys.size or L < self.k:
            return best
        offs = np.arange(0, L - self.k + 1, self.k)  # non-overlapping seed starts
        for s in range(0, n, chunk):
            q = x[s : s + chunk]
            keys = _kmer_keys(q, self.k)[:, offs]  # (c, seeds)
            lo = np.searchsorted(self.keys, keys.ravel(), "left")
            hi = np.searchsorted(self.keys, keys.ravel(), "right")
            cnt = hi - lo
            if not cnt.sum():
                continue
            row = np.repeat(np.repeat(np.arange(q.shape[0]), len(offs)), cnt)
            off = np.repeat(np.tile(offs, q.shape[0]), cnt)
            first = np.repeat(lo - (np.cumsum(cnt) - cnt), cnt)  # every index in [lo, hi) of every seed
            hit = self.pos[first + np.arange(cnt.sum())]
            start = hit - off  # the training window the seed places the sequence on
            seg = np.searchsorted(self.seg_end, hit, "right")
            ok = (start >= self.seg_start[seg]) & (start + L <= self.seg_end[seg])
            pairs = np.unique(np.stack([row[ok], start[ok]], 1), axis=0)
            for p in range(0, len(pairs), 4096):  # bounded memory: 4096 windows at a time
                r, st = pairs[p : p + 4096, 0], pairs[p : p + 4096, 1]
                same = (self.seq[st[:, None] + np.arange(L)] == q[r]).mean(1)
                np.maximum.at(best, s + r, same)
        return best

    def max_identity(self, x, *, both_strands: bool = True, chunk: int = 256) -> np.ndarray:
        """(N,) identity of each sequence to the best training window sharing a seed (0 if none)."""
        x = as_codes(x).astype(np.uint8)
        best = self._best(x, chunk)
        if both_strands:
            best = np.maximum(best, self._best(reverse_complement(x), chunk))
        return best


def near_copies_row(gen, ref, segments, *, threshold: float = 0.9, max_n: int = 2000, seed: int = 0) -> dict:
    """Fraction of generated and of real held-out sequences within ``threshold`` identity of some
    training window (any offset, either strand): memorisation beside the level real DNA shows.
    Each set is a random sample of at most max_n sequences (on a bacterial genome a 70 bp sequence
    has thousands of seed hits to check, ~1 ms a sequence); near_copies_n says how many."""
    gen, ref = as_codes(gen), as_codes(ref)
    if not len(segments) or gen.shape[0] == 0:
        return {}
    rng = np.random.default_rng(seed)
    gen = gen[rng.choice(len(gen), max_n, replace=False)] if len(gen) > max_n else gen
    ref = ref[rng.choice(len(ref), max_n, replace=False)] if len(ref) > max_n else ref
    index = KmerIndex.for_identity(segments, gen.shape[1], threshold)
    row = {"near_copies": float((index.max_identity(gen) >= threshold).mean()), "near_copies_threshold": threshold,
           "near_copies_n": int(len(gen))}
    if ref.shape[0] and ref.shape[1] == gen.shape[1]:
        row["near_copies_ref"] = float((index.max_identity(ref) >= threshold).mean())
    return row


def redraw_near_copies(codes: np.ndarray, draw, segments, max_identity: float, *, max_rounds: int = 20):
    """Replace every sequence whose identity to some training window exceeds ``max_identity`` by a
    fresh draw, until none does or ``max_rounds`` rounds have passed.

    draw(m, round) returns m new (m, L) sequences. Returns (codes, redrawn, left): the accepted
    sequences (those still above the limit after max_rounds are dropped), how many draws were
    replaced in all, and how many were dropped."""
    codes = np.array(as_codes(codes), dtype=np.uint8)
    L = codes.shape[1]
    # sequences "exceeding" x: identity >= x + 1/L, which the seed index finds exactly
    index = KmerIndex.for_identity(segments, L, min(1.0, max_identity + 1.0 / L))
    bad = index.max_identity(codes) > max_identity + 1e-12
    redrawn = 0
    for r in range(max_rounds):
        if not bad.any():
            break
        idx = np.flatnonzero(bad)
        redrawn += idx.size
        codes[idx] = as_codes(draw(idx.size, r)).astype(np.uint8)
        bad[idx] = index.max_identity(codes[idx]) > max_identity + 1e-12
    return codes[~bad], redrawn, int(bad.sum())
