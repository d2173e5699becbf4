"""The analyze report: metrics.json, report.md and figures for a generated set against real data."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from analysis import metrics as M
from analysis import plots
from utils.sequences import atomic_write_text

READINGS = {
    "gc_abs_diff": "0 = same mean GC as the real set",
    "js_4mer": "JS divergence in bits: 0 = identical 4-mer spectra, 1 = disjoint",
    "js_6mer": "JS divergence in bits: 0 = identical 6-mer spectra, 1 = disjoint",
    "unique_fraction": "1 = no duplicates among the generated sequences",
    "exact_copies": "generated sequences found verbatim in the training data (either strand)",
    "nn_identity_mean": "mean identity to the nearest training window; near 1 = memorised",
    "morans_i": "GC autocorrelation along the sequence; compare with real",
    "c2st_auc": "0.5 = indistinguishable from real, 1.0 = trivially told apart",
}


def analyze(gen: np.ndarray, ref: np.ndarray, out_dir, *, train_segments=None, train=None,
            seed: int = 0, c2st: bool = True) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    row = M.compare(gen, ref, train=train, train_segments=train_segments, ks=(1, 2, 3, 4, 5, 6),
                    c2st=c2st, seed=seed)
    row["real_gc_std"] = float(M.gc_content(ref).std())
    row["real_morans_i"] = float(np.nanmean(M.morans_i(ref)))
    row["composition_generated"] = dict(zip("ACGT", M.base_composition(gen).round(4).tolist()))
    row["composition_real"] = dict(zip("ACGT", M.base_composition(ref).round(4).tolist()))
    row["cpg_obs_exp_generated"] = M.cpg_obs_exp(gen)
    row["cpg_obs_exp_real"] = M.cpg_obs_exp(ref)
    row["n_real"] = int(ref.shape[0])
    figs = {
        "position_heatmap": plots.position_heatmaps(gen, ref, out / "position_heatmap.png"),
        "kmer4_scatter": plots.kmer_scatter(gen, ref, out / "kmer4_scatter.png"),
        "gc_distribution": plots.gc_overlay(gen, ref, out / "gc_distribution.png"),
        "composition": plots.composition_bars(gen, ref, out / "composition.png"),
    }
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
    atomic_write_text(out / "metrics.json", json.dumps(clean, indent=2) + "\n")
    lines = ["# Generated vs real sequences", "",
             f"{row['n']} generated and {row['n_real']} real sequences of {row['length']} bp.", "",
             "| metric | value | reading |", "|---|---|---|"]
    for k, v in clean.items():
        if isinstance(v, dict):
            v = ", ".join(f"{b}={x:.3f}" for b, x in v.items())
        elif isinstance(v, float):
            v = f"{v:.4f}"
        lines.append(f"| {k} | {v} | {READINGS.get(k, '')} |")
    lines += ["", *[f"![{k}]({p.name})" for k, p in figs.items()], ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    return clean
