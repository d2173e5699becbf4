"""Figures (matplotlib/seaborn, Agg backend): training curves and sequence-set comparisons."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from analysis import metrics as M  # noqa: E402

BASES = list("ACGT")


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_curves(history: list[dict], path, title: str = "training") -> Path:
    """One panel per logged quantity (losses, learning rates, GC, uniqueness, validation JS)."""
    # the per-epoch judge (train/judging.py) is one panel: its AUC, interval and floor in the epochs it judged
    skip = {"epoch", "phase", "elapsed_s", "seqs_per_s", "val_gc", "reserve_s", "fit_priced_s", "judge_s",
            "val_c2st_lo", "val_c2st_hi", "val_c2st_n", "c2st_floor", "c2st_floor_lo", "c2st_floor_hi",
            "c2st_vs_floor"}
    keys = [k for k in history[0] if k not in skip and isinstance(history[0][k], (int, float))]
    keys += [k for r in history for k in r if k not in keys and k not in skip]
    keys = list(dict.fromkeys(keys))
    # constant series (a fixed length, weight or temperature without --curriculum) say nothing
    keys = [k for k in keys if len({r.get(k) for r in history if r.get(k) not in (None, "")}) > 1
            or k in ("sample_gc", "val_js_4mer", "ks", "val_score", "val_c2st")]
    n = len(keys)
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
    ep = [r["epoch"] for r in history]
    for ax, k in zip(axes.ravel(), keys):
        if k == "val_c2st":
            _c2st_panel(ax, history)
            continue
        ax.plot(ep, _series(history, k), marker="." if len(ep) < 40 else None)
        if k == "sample_gc":
            ax.axhline(history[0]["val_gc"], color="k", ls="--", lw=0.8, label="validation GC")
            ax.legend(fontsize=7)
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(title)
    return _save(fig, path)


def _series(history: list[dict], k: str) -> np.ndarray:
    """A metrics column as floats, NaN where an epoch has none (a row read back from metrics.csv has '')."""
    def num(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return np.nan

    return np.array([num(r.get(k)) for r in history], float)


def _c2st_panel(ax, history: list[dict]) -> None:
    """The per-epoch C2ST where it was judged, its 95% interval, and the real floor beside it."""
    ep = np.array([r["epoch"] for r in history], float)
    auc, lo, hi = (_series(history, k) for k in ("val_c2st", "val_c2st_lo", "val_c2st_hi"))
    floor = _series(history, "c2st_floor")
    ok = np.isfinite(auc)
    ax.errorbar(ep[ok], auc[ok], yerr=[auc[ok] - lo[ok], hi[ok] - auc[ok]], fmt="o", ms=3, lw=0.8,
                label="sample vs held-out")
    if np.isfinite(floor).any():
        ax.plot(ep[ok], floor[ok], "k--", lw=0.8, label="floor (real training windows)")
    ax.axhline(0.5, color="grey", lw=0.6, ls=":")
    ax.set_title("val_c2st (per-epoch judge)", fontsize=9)
    ax.set_xlabel("epoch", fontsize=8)
    ax.legend(fontsize=7)


def training_dynamics(history: list[dict], path, title: str = "training dynamics") -> Path:
    """The Gumbel report's figure: generator and discriminator loss, discriminator accuracy (real,
    fake, mean), GC against the validation GC, Moran's I and diversity, per epoch."""
    ep = [r["epoch"] for r in history]

    panels = [
        ("generator loss", [("g_loss", "total"), ("g_adv", "adversarial"), ("mle", "MLE")], None),
        ("discriminator loss", [("d_loss", "D loss")], None),
        ("discriminator accuracy", [("d_acc", "mean"), ("d_acc_real", "real"), ("d_acc_fake", "fake"),
                                    ("d_auc", "AUC (real vs fake)")], (0, 1.02)),
        ("GC content", [("sample_gc", "generated"), ("val_gc", "held-out")], None),
        ("Moran's I (GC, lag 1)", [("morans_i", "generated")], None),
        ("diversity (mean pairwise Hamming)", [("diversity", "generated"), ("unique_fraction", "unique")], (0, 1.02)),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.4))
    for ax, (name, keys, ylim) in zip(axes.ravel(), panels):
        for k, label in keys:
            y = _series(history, k)
            if np.isfinite(y).any():
                ax.plot(ep, y, label=label, ls="--" if k == "val_gc" else "-", lw=1.2)
        if name == "discriminator accuracy":
            ax.axhline(0.5, color="grey", lw=0.6, ls=":")
        if ylim:
            ax.set_ylim(*ylim)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)


def position_heatmaps(gen, ref, path) -> Path:
    """Per-position nucleotide frequencies for real and generated, and their difference."""
    def freq(x):
        x = M.as_codes(x)
        return np.stack([(x == b).mean(0) for b in range(4)])  # (4, L)

    fr, fg = freq(ref), freq(gen)
    L = min(fr.shape[1], fg.shape[1])
    fr, fg = fr[:, :L], fg[:, :L]
    fig, axes = plt.subplots(3, 1, figsize=(min(18, 2 + L * 0.18), 6.5), sharex=True)
    for ax, mat, name, cmap, (vmin, vmax) in [
        (axes[0], fr, "real", "viridis", (0, max(0.5, fr.max()))),
        (axes[1], fg, "generated", "viridis", (0, max(0.5, fg.max()))),
        (axes[2], fg - fr, "generated - real", "RdBu_r", (-0.25, 0.25)),
    ]:
        sns.heatmap(mat, ax=ax, cmap=cmap, vmin=vmin, vmax=vmax, yticklabels=BASES,
                    cbar_kws={"label": "frequency" if name != "generated - real" else "difference"})
        ax.set_title(f"position x nucleotide frequency: {name}")
        ax.set_ylabel("base")
    axes[2].set_xlabel("position")
    return _save(fig, path)


def kmer_scatter(gen, ref, path, k: int = 4) -> Path:
    fr, fg = M.kmer_spectrum(ref, k), M.kmer_spectrum(gen, k)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(fr, fg, s=6, alpha=0.6)
    hi = max(fr.max(), fg.max()) * 1.05
    ax.plot([0, hi], [0, hi], "k--", lw=0.8, label="y = x")
    ax.set_xlabel(f"real {k}-mer frequency")
    ax.set_ylabel(f"generated {k}-mer frequency")
    ax.set_title(f"{k}-mer spectrum (JS = {M.js_divergence(fr, fg):.4f} bits)")
    ax.legend()
    return _save(fig, path)


def gc_overlay(gen, ref, path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 41)
    ax.hist(M.gc_content(ref), bins=bins, alpha=0.5, density=True, label="real")
    ax.hist(M.gc_content(gen), bins=bins, alpha=0.5, density=True, label="generated")
    ax.set_xlabel("GC fraction per sequence")
    ax.set_ylabel("density")
    ax.set_title("GC content distribution")
    ax.legend()
    return _save(fig, path)


def composition_bars(gen, ref, path) -> Path:
    fr, fg = M.base_composition(ref), M.base_composition(gen)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    x = np.arange(4)
    ax.bar(x - 0.2, fr, 0.4, label="real")
    ax.bar(x + 0.2, fg, 0.4, label="generated")
    ax.set_xticks(x, BASES)
    ax.set_ylabel("frequency")
    ax.set_title("nucleotide composition")
    ax.legend()
    return _save(fig, path)


def _kmer3_matrix(x) -> np.ndarray:
    """(16, 4) 3-mer frequencies: row = first two bases (AA..TT), column = third base."""
    return M.kmer_spectrum(x, 3).reshape(16, 4)


DINUC = [a + b for a in BASES for b in BASES]


def kmer3_heatmap(gen, ref, path) -> Path:
    """3-mer frequencies in a 16 x 4 layout for real and generated, and their difference."""
    fr, fg = _kmer3_matrix(ref), _kmer3_matrix(gen)
    vmax = max(fr.max(), fg.max())
    d = np.abs(fg - fr).max() or 1e-3
    fig, axes = plt.subplots(1, 3, figsize=(11, 6.2))
    for ax, mat, name, cmap, (vmin, vm) in [
        (axes[0], fr, "real", "viridis", (0, vmax)),
        (axes[1], fg, "generated", "viridis", (0, vmax)),
        (axes[2], fg - fr, "generated - real", "RdBu_r", (-d, d)),
    ]:
        sns.heatmap(mat, ax=ax, cmap=cmap, vmin=vmin, vmax=vm, xticklabels=BASES, yticklabels=DINUC,
                    cbar_kws={"label": "frequency" if ax is not axes[2] else "difference"})
        ax.set_title(f"3-mer frequency: {name}", fontsize=10)
        ax.set_xlabel("third base")
        ax.set_ylabel("first two bases")
    return _save(fig, path)


def homopolymer_plot(gen, ref, path, max_len: int = 12) -> Path:
    hr, hg = M.homopolymer_runs(ref, max_len), M.homopolymer_runs(gen, max_len)
    x = np.arange(1, max_len + 1)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.bar(x - 0.2, hr, 0.4, label="real")
    ax.bar(x + 0.2, hg, 0.4, label="generated")
    ax.set_yscale("log")
    ax.set_xticks(x, [str(i) if i < max_len else f">={max_len}" for i in x])
    ax.set_xlabel("homopolymer run length (bases)")
    ax.set_ylabel("fraction of runs (log)")
    ax.set_title("homopolymer run-length distribution")
    ax.legend()
    return _save(fig, path)


def nn_identity_hist(ident_gen, ident_real, path) -> Path:
    """Nearest-training-neighbour identity of generated sequences, beside held-out real ones."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    bins = np.linspace(0, 1, 51)
    if ident_real is not None and len(ident_real):
        ax.hist(ident_real, bins=bins, alpha=0.5, density=True, label="held-out real")
    ax.hist(ident_gen, bins=bins, alpha=0.5, density=True, label="generated")
    ax.axvline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("identity to the nearest training window (1 = copy)")
    ax.set_ylabel("density")
    ax.set_title("novelty: nearest-neighbour identity")
    ax.legend()
    return _save(fig, path)


def structure_panels(gen, ref, path) -> Path:
    """Codon periodicity (period-3 power) and longest-ORF distributions, generated beside real."""
    from analysis.structure import longest_orf, period3_power

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    p_g, p_r = period3_power(gen), period3_power(ref)
    hi = float(np.nanpercentile(np.concatenate([p_g, p_r]), 99.5)) if len(p_g) + len(p_r) else 1.0
    bins = np.linspace(0, max(hi, 1e-6), 41)
    axes[0].hist(p_r, bins=bins, alpha=0.5, density=True, label="held-out real")
    axes[0].hist(p_g, bins=bins, alpha=0.5, density=True, label="generated")
    axes[0].set_xlabel("period-3 power (no codon structure ~0.75)")
    axes[0].set_title("codon periodicity")
    o_g, o_r = longest_orf(gen), longest_orf(ref)
    top = max(int(np.concatenate([o_g, o_r]).max(initial=3)), 3)
    obins = np.arange(0, top + 6, max(3, 3 * (top // 120 + 1)))
    axes[1].hist(o_r, bins=obins, alpha=0.5, density=True, label="held-out real")
    axes[1].hist(o_g, bins=obins, alpha=0.5, density=True, label="generated")
    axes[1].set_xlabel("longest ORF per sequence (bases, both strands)")
    axes[1].set_title("open reading frames")
    for ax in axes:
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    return _save(fig, path)


def motif_scatter(rate_gen, rate_ref, labels, path, top: int = 6) -> Path:
    """Per-motif hit rate, generated against real held-out, the most over- and under-represented named."""
    fig, ax = plt.subplots(figsize=(6.2, 5.2))
    ax.scatter(rate_ref, rate_gen, s=6, alpha=0.5)
    hi = max(float(np.max(rate_ref, initial=0)), float(np.max(rate_gen, initial=0)), 1e-4)
    ax.plot([0, hi], [0, hi], "k--", lw=0.8)
    lr = np.log2((np.asarray(rate_gen) + 1e-4) / (np.asarray(rate_ref) + 1e-4))
    for j in np.concatenate([np.argsort(lr)[:top // 2], np.argsort(lr)[::-1][:top // 2]]):
        ax.annotate(labels[j].split(" ", 1)[-1], (rate_ref[j], rate_gen[j]), fontsize=7)
    r = np.corrcoef(rate_gen, rate_ref)[0, 1] if np.std(rate_gen) > 0 and np.std(rate_ref) > 0 else float("nan")
    ax.set_xlabel("hit rate in real held-out sequences")
    ax.set_ylabel("hit rate in generated sequences")
    ax.set_title(f"JASPAR motif hit rates ({len(labels)} profiles, Pearson r = {r:.3f})")
    return _save(fig, path)


def metric_bars(rows: list[dict], metrics: list[str], path, floor: dict | None = None,
                readings: dict | None = None) -> Path:
    """One bar chart per metric, one bar per model, the real-vs-real floor as a dashed line."""
    n = len(metrics)
    cols = min(3, n)
    nr = -(-n // cols)
    fig, axes = plt.subplots(nr, cols, figsize=(4.6 * cols, 3.4 * nr), squeeze=False)
    labels = [r["model"] for r in rows]
    colors = sns.color_palette("tab10", len(rows))
    for ax, m in zip(axes.ravel(), metrics):
        vals = [r.get(m, np.nan) if r.get(m) is not None else np.nan for r in rows]
        ax.bar(range(len(rows)), vals, color=colors)
        if floor and floor.get(m) is not None:
            ax.axhline(floor[m], color="k", ls="--", lw=1, label="real vs real")
            ax.legend(fontsize=7)
        ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(m + (f"\n({readings[m]})" if readings and m in readings else ""), fontsize=9)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return _save(fig, path)


def kmer_grid(sets: dict, ref, path) -> Path:
    """One panel per model: its 3-mer frequencies minus the real ones (16 x 4 layout)."""
    fr = _kmer3_matrix(ref)
    mats = {name: _kmer3_matrix(x) - fr for name, x in sets.items()}
    d = max((np.abs(m).max() for m in mats.values()), default=1e-3) or 1e-3
    n = len(mats)
    cols = min(4, n)
    nr = -(-n // cols)
    fig, axes = plt.subplots(nr, cols, figsize=(3.2 * cols, 5.6 * nr), squeeze=False)
    for ax, (name, mat) in zip(axes.ravel(), mats.items()):
        sns.heatmap(mat, ax=ax, cmap="RdBu_r", vmin=-d, vmax=d, xticklabels=BASES, yticklabels=DINUC,
                    cbar=ax is axes.ravel()[n - 1])
        ax.set_title(f"{name}\n3-mer freq - real", fontsize=9)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return _save(fig, path)


# ------------------------------------------------------------------ real-valued sequences (SeqGAN)


def distribution_panels(gen, real, path, max_points: int = 200_000) -> Path:
    """Six panels comparing pooled values: histograms, KDE, Q-Q, box plots, CDFs, summary statistics."""
    from scipy import stats as st

    from analysis import distributions as DS

    g, r = DS.as_signals(gen).ravel(), DS.as_signals(real).ravel()
    rng = np.random.default_rng(0)
    gs = g if g.size <= max_points else rng.choice(g, max_points, replace=False)
    rs = r if r.size <= max_points else rng.choice(r, max_points, replace=False)
    fig, ax = plt.subplots(2, 3, figsize=(15, 8.5))
    bins = np.linspace(min(g.min(), r.min()), max(g.max(), r.max()), 51)
    ax[0, 0].hist(r, bins, alpha=0.55, density=True, label="real")
    ax[0, 0].hist(g, bins, alpha=0.55, density=True, label="generated")
    ax[0, 0].set_title("histograms")
    ax[0, 0].legend()
    for v, lab in ((rs, "real"), (gs, "generated")):
        if np.ptp(v) > 0:
            sns.kdeplot(x=v, ax=ax[0, 1], label=lab, fill=True, alpha=0.3, warn_singular=False)
    ax[0, 1].set_title("kernel density")
    ax[0, 1].legend()
    q = np.linspace(0.005, 0.995, 199)
    qr, qg = np.quantile(r, q), np.quantile(g, q)
    ax[0, 2].scatter(qr, qg, s=8)
    lo, hi = min(qr.min(), qg.min()), max(qr.max(), qg.max())
    ax[0, 2].plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax[0, 2].set_xlabel("real quantiles")
    ax[0, 2].set_ylabel("generated quantiles")
    ax[0, 2].set_title("Q-Q plot")
    ax[1, 0].boxplot([rs, gs], showfliers=False)
    ax[1, 0].set_xticks([1, 2], ["real", "generated"])
    ax[1, 0].set_title("box plots (whiskers 1.5 IQR)")
    for v, lab in ((r, "real"), (g, "generated")):
        xs = np.sort(v)
        ax[1, 1].plot(xs, np.arange(1, xs.size + 1) / xs.size, label=lab)
    ks, p = st.ks_2samp(g, r)
    ax[1, 1].set_title(f"CDFs (KS {ks:.3f}, p {p:.2g})")
    ax[1, 1].legend()
    sg, sr = DS.summary(g), DS.summary(r)
    names = ["mean", "std", "median", "skew", "kurtosis"]
    xpos = np.arange(len(names))
    ax[1, 2].bar(xpos - 0.2, [sr[k] for k in names], 0.4, label="real")
    ax[1, 2].bar(xpos + 0.2, [sg[k] for k in names], 0.4, label="generated")
    ax[1, 2].set_xticks(xpos, names)
    ax[1, 2].axhline(0, color="k", lw=0.6)
    ax[1, 2].set_title("summary statistics")
    ax[1, 2].legend()
    fig.suptitle(f"value distributions: {g.size} generated vs {r.size} real values "
                 f"(Wasserstein {DS.wasserstein(g, r):.3f})")
    return _save(fig, path)


def temporal_panels(gen, real, path, max_lag: int = 10, n_show: int = 5) -> Path:
    """Four panels along the sequence: sample sequences, mean +- sd per position, autocorrelation by
    lag, and the value distribution at each position."""
    from analysis import distributions as DS

    g, r = DS.as_signals(gen), DS.as_signals(real)
    L = g.shape[1]
    pos = np.arange(1, L + 1)
    fig, ax = plt.subplots(2, 2, figsize=(13, 8.5))
    for i in range(min(n_show, r.shape[0])):
        ax[0, 0].plot(pos, r[i], color="C0", alpha=0.6, lw=1, label="real" if i == 0 else None)
    for i in range(min(n_show, g.shape[0])):
        ax[0, 0].plot(pos, g[i], color="C1", alpha=0.6, lw=1, label="generated" if i == 0 else None)
    ax[0, 0].set_title(f"sample sequences ({n_show} each)")
    ax[0, 0].legend()
    for x, lab, col in ((r, "real", "C0"), (g, "generated", "C1")):
        m, s = x.mean(0), x.std(0)
        ax[0, 1].plot(pos, m, color=col, label=lab)
        ax[0, 1].fill_between(pos, m - s, m + s, color=col, alpha=0.2)
    ax[0, 1].set_title("mean per position (band: +- 1 sd)")
    ax[0, 1].legend()
    lags = np.arange(1, min(max_lag, L - 1) + 1)
    ax[1, 0].plot(lags, DS.autocorrelation(r, lags.size), "o-", label="real")
    ax[1, 0].plot(lags, DS.autocorrelation(g, lags.size), "s-", label="generated")
    ax[1, 0].axhline(0, color="k", lw=0.6)
    ax[1, 0].set_xlabel("lag")
    ax[1, 0].set_title("autocorrelation by lag")
    ax[1, 0].legend()
    qs = (0.1, 0.25, 0.5, 0.75, 0.9)
    for x, lab, col, ls in ((r, "real", "C0", "-"), (g, "generated", "C1", "--")):
        qv = np.quantile(x, qs, axis=0)
        for j, qq in enumerate(qs):
            ax[1, 1].plot(pos, qv[j], color=col, ls=ls, lw=2 if qq == 0.5 else 0.8,
                          label=f"{lab} deciles/quartiles/median" if j == 0 else None)
    ax[1, 1].set_title("distribution along positions (quantiles 0.1-0.9)")
    ax[1, 1].legend(fontsize=8)
    for a in (ax[0, 0], ax[0, 1], ax[1, 1]):
        a.set_xlabel("position")
    fig.suptitle(f"temporal structure: {g.shape[0]} generated vs {r.shape[0]} real sequences of length {L}")
    return _save(fig, path)


def confusion_heatmap(confusion, names, path, ceiling=None) -> Path:
    """Requested label (rows) against the label an independent classifier assigns (columns), each
    row summing to 1: a conditional generator that writes its labels has a bright diagonal. ceiling:
    per label, the classifier's accuracy on real held-out windows (the best the diagonal can be)."""
    K = len(names)
    fig, ax = plt.subplots(figsize=(2.2 + 1.1 * K, 1.8 + 0.9 * K))
    sns.heatmap(np.asarray(confusion), ax=ax, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis",
                xticklabels=names, yticklabels=names, cbar_kws={"label": "fraction of the requested label's set"})
    ax.set_xlabel("assigned by the classifier")
    ax.set_ylabel("requested (generated header)")
    title = "conditional fidelity"
    if ceiling is not None:
        title += "\nreal held-out diagonal: " + ", ".join(f"{n} {c:.2f}" for n, c in zip(names, ceiling))
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
