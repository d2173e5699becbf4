"""Transcription-factor motif content: JASPAR profiles scanned in generated and real held-out sets.

The matrices come from pyjaspar (the JASPAR CORE database, latest version of each matrix), by
taxonomic group or all of them. pyjaspar 4.0.0 ships no prokaryote matrices (its JASPAR 2014-2026
databases hold none: JASPAR moved them out of CORE), so bacterial genomes are scanned with the
eukaryotic profiles, which then measure motif-like word content rather than known binding sites.
Fetching thousands of matrices through pyjaspar takes minutes, so the count matrices are cached
under $DNAGAN_CACHE (default ~/.cache/dnagan)/motifs the first time.

Scanning is Biopython's: each matrix becomes a log-odds PSSM against the reference's base
composition (pseudocount 0.5 per cell) and ``PSSM.calculate`` scores every position of both
strands. A hit is a score above the PSSM's (1 - fpr) quantile on a random sequence of the same
composition (a Monte-Carlo FIMO-style p-value threshold, fpr = 1e-4 by default). A motif's hit
rate is the fraction of sequences with at least one hit. The report gives the Pearson r of the
hit rates (generated vs real) over all motifs and the most over- and under-represented motifs by
log2 ratio (pseudocount: half a sequence).
"""
from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from analysis.metrics import as_codes, base_composition
from utils.errors import ConfigError
from utils.outputs import cache_dir, write_bytes

log = logging.getLogger(__name__)
GROUPS = ("all", "vertebrates", "plants", "insects", "fungi", "nematodes", "urochordates")
RELEASE = "JASPAR2026"


def _cache_path(group: str, release: str) -> Path:
    return cache_dir("motifs") / f"{release}_{group}.npz"


def _save_npz(path: Path, **arrays) -> None:
    """Write a cache entry atomically: a concurrent or interrupted run never reads half a file."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(path, buf.getbuffer())


def _ref_cache_path(key: str) -> Path:
    return cache_dir("motifs") / f"reference_{key}.npz"


def load_matrices(group: str = "all", release: str = RELEASE) -> tuple[list[str], list[str], list[np.ndarray]]:
    """(ids, names, count matrices (4, width), rows A C G T) of JASPAR CORE for a taxonomic group."""
    if group not in GROUPS:
        raise ConfigError(f"--motifs {group}: choose one of {', '.join(GROUPS)}")
    path = _cache_path(group, release)
    if path.exists():
        z = np.load(path, allow_pickle=False)
        widths = z["widths"]
        flat = np.split(z["counts"], np.cumsum(widths)[:-1], axis=1)
        return z["ids"].tolist(), z["names"].tolist(), flat
    try:
        from pyjaspar import jaspardb
    except ImportError:
        raise ConfigError("--motifs needs pyjaspar (pip install pyjaspar; it is in requirements.txt)") from None
    log.warning("reading JASPAR %s (%s) through pyjaspar once; cached in %s", release, group, path)
    db = jaspardb(release=release)
    found = db.fetch_motifs(collection="CORE", tax_group=None if group == "all" else [group], all_versions=False)
    ids, names, mats = [], [], []
    for m in found:
        ids.append(m.matrix_id)
        names.append(m.name)
        mats.append(np.array([m.counts[b] for b in "ACGT"], dtype=np.float64))
    _save_npz(path, ids=np.array(ids), names=np.array(names), widths=np.array([m.shape[1] for m in mats]),
              counts=np.concatenate(mats, axis=1))
    return ids, names, mats


class Scanner:
    """PSSMs of the matrices against one background, with their hit thresholds."""

    def __init__(self, matrices, background, *, fpr: float = 1e-4, seed: int = 0, null_bases: int = 200_000,
                 thresholds=None):
        """``thresholds``: the hit thresholds of an earlier Scanner of the same matrices, background,
        fpr and seed (MotifReference's cache), which skips the scan of the random sequence."""
        from Bio import motifs

        bg = {b: float(p) for b, p in zip("ACGT", background)}
        rng = np.random.default_rng(seed)
        null = None if thresholds is not None else "".join(
            np.array(list("ACGT"))[rng.choice(4, null_bases, p=np.asarray(background) / sum(background))])
        self.pssms, self.thresholds = [], [] if thresholds is None else [float(t) for t in thresholds]
        for c in matrices:
            m = motifs.Motif(alphabet="ACGT", counts={b: c[i].tolist() for i, b in enumerate("ACGT")})
            pssm = m.counts.normalize(pseudocounts=0.5).log_odds(background=bg)
            self.pssms.append((pssm, pssm.reverse_complement()))
            if null is not None:
                scores = np.asarray(pssm.calculate(null), dtype=np.float64)
                self.thresholds.append(float(np.quantile(scores, 1 - fpr)))

    def hit_rates(self, x, progress: bool = True) -> np.ndarray:
        """(n_motifs,) fraction of sequences with at least one hit on either strand."""
        x = as_codes(x)
        n, L = x.shape
        gap = max(p.length for p, _ in self.pssms) if self.pssms else 1
        # one string, sequences separated by N runs (no motif scores across them: Biopython gives NaN)
        chars = np.full((n, L + gap), ord("N"), np.uint8)
        chars[:, :L] = np.frombuffer(b"ACGT", np.uint8)[x]
        text = chars.tobytes().decode("ascii")
        out = np.zeros(len(self.pssms))
        for i, ((fwd, rev), t) in enumerate(tqdm(list(zip(self.pssms, self.thresholds)), desc="motifs",
                                                  disable=None if progress else True, leave=False)):
            hit = np.zeros(n, bool)
            for p in (fwd, rev):
                s = np.asarray(p.calculate(text), dtype=np.float64)
                pos = np.flatnonzero(s > t)  # NaN (a window touching an N) never passes
                hit[pos // (L + gap)] = True
            out[i] = hit.mean()
        return out


class MotifReference:
    """The real reference's hit rates, computed once; ``row(gen)`` compares a generated set with them."""

    def __init__(self, ref, *, group: str = "all", max_n: int = 5000, fpr: float = 1e-4, seed: int = 0,
                 progress: bool = True):
        ref = as_codes(ref)
        self.rng, self.max_n, self.progress, self.group, self.fpr = np.random.default_rng(seed), max_n, progress, group, fpr
        ref = ref[self.rng.choice(len(ref), max_n, replace=False)] if len(ref) > max_n else ref
        self.ids, self.names, mats = load_matrices(group)
        self.labels = [f"{i} {n}" for i, n in zip(self.ids, self.names)]
        self.n_ref = len(ref)
        # the reference's thresholds and hit rates are cached by what determines them (the windows
        # scanned, the matrices, fpr, seed): scanning a 5,000 x 500 bp reference against all of
        # JASPAR takes minutes, and analyses and benchmarks score many sets against one reference
        h = hashlib.sha256(np.ascontiguousarray(ref).tobytes())
        h.update(repr((ref.shape, str(ref.dtype), fpr, seed, RELEASE)).encode())
        for c in mats:
            h.update(np.ascontiguousarray(c, dtype=np.float64).tobytes())
        path = _ref_cache_path(h.hexdigest()[:24])
        if path.exists():
            z = np.load(path, allow_pickle=False)
            self.scan = Scanner(mats, base_composition(ref), fpr=fpr, seed=seed, thresholds=z["thresholds"])
            self.rates = z["rates"]
            self.cached = True
            return
        self.scan = Scanner(mats, base_composition(ref), fpr=fpr, seed=seed)
        self.rates = self.scan.hit_rates(ref, progress)
        self.cached = False
        _save_npz(path, thresholds=np.asarray(self.scan.thresholds), rates=self.rates)

    def row(self, gen, top: int = 5) -> tuple[dict, dict]:
        gen = as_codes(gen)
        gen = gen[self.rng.choice(len(gen), self.max_n, replace=False)] if len(gen) > self.max_n else gen
        r_gen, r_ref = self.scan.hit_rates(gen, self.progress), self.rates
        lr = np.log2((r_gen + 0.5 / max(len(gen), 1)) / (r_ref + 0.5 / max(self.n_ref, 1)))
        order = np.argsort(lr)
        ok = r_gen.std() > 0 and r_ref.std() > 0
        row = {
            "motif_collection": f"{RELEASE} CORE {self.group}",
            "motif_count": len(self.ids),
            "motif_fpr": self.fpr,
            "motif_n": int(min(len(gen), self.n_ref)),
            "motif_pearson_r": float(np.corrcoef(r_gen, r_ref)[0, 1]) if ok else float("nan"),
            "motif_mean_hit_rate": float(r_gen.mean()),
            "motif_mean_hit_rate_ref": float(r_ref.mean()),
            "motif_over": {self.labels[j]: round(float(lr[j]), 3) for j in order[::-1][:top]},
            "motif_under": {self.labels[j]: round(float(lr[j]), 3) for j in order[:top]},
        }
        return row, {"motif_rates": (r_gen, r_ref, self.labels)}


def motif_row(gen, ref, *, group: str = "all", max_n: int = 5000, fpr: float = 1e-4, seed: int = 0,
              progress: bool = True) -> tuple[dict, dict]:
    """(metrics under a motif_ prefix, arrays for the figure) for gen against the real reference."""
    return MotifReference(ref, group=group, max_n=max_n, fpr=fpr, seed=seed, progress=progress).row(gen)
