"""The analyze report: metrics.json, report.md, report.html and figures for a generated set against
real data. Every number comes from analysis/metrics.py, the same functions training and the
benchmarks use."""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import numpy as np
from scipy.stats import ks_2samp
from tqdm.auto import tqdm

from analysis import metrics as M
from analysis import plots
from analysis.judge import versus_floor
from utils.outputs import staged_dir, writable_dir
from utils.sequences import atomic_write_text

READINGS = {
    "n": "generated sequences analysed",
    "n_real": "real (reference) sequences",
    "length": "bases per sequence",
    "gc_mean": "mean GC of the generated set",
    "gc_std": "spread of per-sequence GC (generated)",
    "gc_ref": "mean GC of the real set",
    "gc_std_ref": "spread of per-sequence GC (real)",
    "gc_abs_diff": "0 = same mean GC as the real set",
    "gc_ks_statistic": "KS distance of the GC distributions: 0 = same shape",
    "gc_ks_pvalue": "small (< 0.01) = GC distributions differ detectably",
    "js_1mer": "JS in bits of base composition: 0 = identical",
    "js_2mer": "JS of dinucleotide spectra: 0 = identical, 1 = disjoint",
    "js_3mer": "JS of 3-mer spectra (codon-scale structure)",
    "js_4mer": "JS of 4-mer spectra: markov-3 sets the bar",
    "js_5mer": "JS of 5-mer spectra",
    "js_6mer": "JS of 6-mer spectra: sensitive to motifs and sample size",
    "cpg_obs_exp": "CpG observed/expected (generated); compare with real",
    "cpg_obs_exp_ref": "CpG observed/expected (real)",
    "morans_i": "GC autocorrelation along sequences (generated)",
    "morans_i_ref": "GC autocorrelation along sequences (real)",
    "unique_fraction": "1 = no duplicates among the generated sequences",
    "diversity": "mean pairwise Hamming fraction (generated); real DNA ~0.7",
    "diversity_ref": "mean pairwise Hamming fraction (real)",
    "exact_copies": "generated sequences found verbatim in training data (either strand); 0 = none",
    "nn_identity_mean": "mean identity to nearest training window; 1 = memorised",
    "nn_identity_mean_ref": "the same for held-out real sequences: the level to expect",
    "c2st_auc": "0.5 = indistinguishable from real, 1.0 = trivially told apart (cross-fitted CNN judge)",
    "c2st_lo": "lower end of the 95% interval of c2st_auc (bootstrap and the repeated judges' spread)",
    "c2st_hi": "upper end of the 95% interval of c2st_auc (bootstrap and the repeated judges' spread)",
    "c2st_sd": "standard deviation of the AUC over the repeated judges (seeds: subsample, folds, initialisation)",
    "c2st_repeats": "independent cross-fitted judges averaged into c2st_auc",
    "c2st_interval": "how c2st_lo/hi were made: 't' (several judges: Student's t at the Welch-Satterthwaite "
                     "degrees of freedom of the bootstrap variance plus the judges' spread) or 'bootstrap' (one judge)",
    "c2st_n": "sequences per side the judge saw",
    "c2st_judge": "which classifier judged (analysis/judge.py)",
    "c2st_device": "where the judges trained (cpu or cuda: the same weights and batches, rounding apart; --device)",
    "c2st_underpowered": "true = fewer than 500 sequences a side: the C2ST cannot separate close models",
    "c2st_floor": "C2ST AUC of real training windows against the same reference, as many a side, one judge: "
                  "the lowest c2st_auc to expect here (real DNA's own spread and the judge's noise)",
    "c2st_floor_lo": "lower end of the 95% interval of c2st_floor",
    "c2st_floor_hi": "upper end of the 95% interval of c2st_floor",
    "c2st_vs_floor": "'above the floor' = told from real DNA more often than real DNA is; 'overlaps the floor' "
                     "= not told from real DNA at this sample size (read beside c2st_markov5)",
    "c2st_markov5": "C2ST AUC of an order-5 Markov chain trained on the same training windows: the judge's power. "
                    "Near c2st_floor, the judge cannot tell a Markov chain from real DNA here",
    "c2st_markov5_lo": "lower end of the 95% interval of c2st_markov5",
    "c2st_markov5_hi": "upper end of the 95% interval of c2st_markov5",
    "c2st_power": "true = the order-5 Markov chain reads above the floor: the judge tells models from real DNA here; "
                  "false = it cannot, and no C2ST on this reference ranks models (read the k-mer spectra)",
    "period3": "period-3 Fourier power (codon structure; ~0.75 = none), generated",
    "period3_ref": "the same for real held-out sequences",
    "period3_gap": "|period3 - period3_ref|: 0 = same codon periodicity",
    "period3_ks": "KS distance of the period-3 power distributions",
    "orf_longest_mean": "mean longest open reading frame per sequence (bases, both strands)",
    "orf_longest_mean_ref": "the same for real held-out sequences",
    "orf_ks": "KS distance of the longest-ORF distributions: 0 = same",
    "orf_ks_pvalue": "small (< 0.01) = ORF lengths differ detectably",
    "near_copies": "fraction of generated within near_copies_threshold identity of a training window (any offset, either strand)",
    "near_copies_ref": "the same for real held-out sequences: the level to expect",
    "near_copies_threshold": "identity counted as a near copy",
    "near_copies_n": "sequences per set checked for near copies (a random sample)",
    "fd": "Fréchet distance of learned embeddings, generated vs held-out (lower = closer; read beside fd_floor)",
    "fd_lo": "lower end of the 95% bootstrap interval of fd",
    "fd_hi": "upper end of the 95% bootstrap interval of fd",
    "fd_floor": "Fréchet distance of real training windows vs held-out at the same sample size",
    "fd_floor_lo": "lower end of the 95% bootstrap interval of fd_floor",
    "fd_floor_hi": "upper end of the 95% bootstrap interval of fd_floor",
    "fd_n": "sequences per side in the Fréchet distance",
    "motif_collection": "JASPAR profiles scanned (pyjaspar)",
    "motif_count": "profiles scanned",
    "motif_fpr": "false-positive rate per position that sets each profile's hit threshold",
    "motif_n": "sequences per set scanned",
    "motif_pearson_r": "Pearson r of per-motif hit rates, generated vs real: 1 = the same motif content",
    "motif_mean_hit_rate": "mean fraction of generated sequences with a hit, over profiles",
    "motif_mean_hit_rate_ref": "the same for real held-out sequences",
    "motif_over": "most over-represented profiles in the generated set (log2 hit-rate ratio)",
    "motif_under": "most under-represented profiles (log2 hit-rate ratio)",
    "conditional_accuracy": "fraction of generated sequences an independent classifier assigns to the label asked for",
    "conditional_ceiling": "the same classifier's accuracy on real held-out windows, in the generated set's label mix",
    "conditional_chance": "accuracy of a guess (1 / labels)",
    "conditional_vs_ceiling": "conditional_accuracy / conditional_ceiling: 1 = as recognisable as real DNA of the label",
    "conditional_labels": "labels in the reference",
    "real_heldout_accuracy": "the classifier's accuracy on all real held-out windows",
}

FIGURE_TEXT = {
    "position_heatmap": "Position x nucleotide frequencies: positional bias, e.g. a generator that favours one base at the start.",
    "kmer3_heatmap": "3-mer frequencies (16 x 4): which trinucleotides (codon-scale words) are over- or under-produced.",
    "kmer4_scatter": "4-mer frequencies, real against generated: points off the diagonal are words the model gets wrong.",
    "gc_distribution": "Per-sequence GC: a narrower generated histogram means too uniform sequences, a shifted one GC drift.",
    "composition": "Nucleotide composition: the 'mostly A' failure shows here first.",
    "homopolymer_runs": "Run-length distribution (log scale): too many long runs is a degenerate generator.",
    "nn_identity": "Identity to the nearest training window: a spike at 1 is memorisation; real held-out DNA shows the natural level.",
    "motifs": "JASPAR motif hit rates, generated against real: points off the diagonal are motifs the model over- or under-produces.",
    "conditional_confusion": "Label asked for (rows) against the label an independent classifier trained on real labelled windows assigns (columns).",
    "structure": "Codon periodicity (period-3 power) and the longest open reading frame per sequence: long-range structure no short Markov chain has.",
}


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def report_metrics(gen, ref, *, train=None, train_segments=None, seed: int = 0, c2st: bool = True,
                   frechet: bool = True, motifs: str | None = None, progress: bool = True,
                   ref_groups=None, c2st_n: int | None = None, judge_device=None) -> tuple[dict, dict]:
    """(metrics, arrays): every report figure's number, and the per-sequence arrays the figures use.
    ref_groups: each reference window's block, kept in one fold by the judge (analysis.judge.c2st);
    c2st_n: the judge reads at most that many sequences a side; judge_device: where it trains (None: the CPU)."""
    from analysis.frechet import frechet_row
    from analysis.neighbours import near_copies_row

    gen, ref = M.as_codes(gen), M.as_codes(ref)
    steps = ["k-mer spectra and GC", "novelty", "Fréchet distance", "two-sample classifier"]
    bar = tqdm(steps, desc="analyze", disable=None if progress else True, leave=False)
    it = iter(bar)
    next(it)
    row = M.compare(gen, ref, train=None, train_segments=None, ks=(1, 2, 3, 4, 5, 6), c2st=False, seed=seed)
    gc_g, gc_r = M.gc_content(gen), M.gc_content(ref)
    ks = ks_2samp(gc_g, gc_r)
    row.update({
        "n_real": int(ref.shape[0]),
        "gc_std_ref": float(gc_r.std()),
        "gc_ks_statistic": float(ks.statistic),
        "gc_ks_pvalue": float(ks.pvalue),
        "cpg_obs_exp": M.cpg_obs_exp(gen),
        "cpg_obs_exp_ref": M.cpg_obs_exp(ref),
        "morans_i_ref": _nanmean(M.morans_i(ref)),
        "diversity": M.mean_pairwise_hamming(gen, seed=seed),
        "diversity_ref": M.mean_pairwise_hamming(ref, seed=seed),
        "composition": dict(zip("ACGT", M.base_composition(gen).round(5).tolist())),
        "composition_ref": dict(zip("ACGT", M.base_composition(ref).round(5).tolist())),
        "dinucleotides": dict(zip(plots.DINUC, M.kmer_spectrum(gen, 2).round(5).tolist())),
        "dinucleotides_ref": dict(zip(plots.DINUC, M.kmer_spectrum(ref, 2).round(5).tolist())),
        "homopolymer_runs": M.homopolymer_runs(gen).round(6).tolist(),
        "homopolymer_runs_ref": M.homopolymer_runs(ref).round(6).tolist(),
    })
    arrays = {"nn_gen": None, "nn_ref": None}
    next(it)
    if train_segments is not None:
        row["exact_copies"] = M.exact_copies(gen, train_segments)
        row.update(near_copies_row(gen, ref, train_segments, seed=seed))
    if train is not None:
        arrays["nn_gen"] = M.nearest_identity(gen, train, seed=seed)
        arrays["nn_ref"] = M.nearest_identity(ref, train, seed=seed)
        row["nn_identity_mean"] = float(arrays["nn_gen"].mean())
        row["nn_identity_mean_ref"] = float(arrays["nn_ref"].mean())
    next(it, None)
    if train is not None and frechet:
        row.update(frechet_row(gen, ref, train, seed=seed, progress=progress))
    next(it, None)
    if motifs:
        from analysis.motifs import motif_row

        m_row, m_arrays = motif_row(gen, ref, group=motifs, seed=seed, progress=progress)
        row.update(m_row)
        arrays.update(m_arrays)
    if c2st:
        row.update(M.c2st_row(ref, gen, seed=seed, real_groups=ref_groups, device=judge_device,  # groups None: random folds
                              **({"max_n": M.judge_size(c2st_n)} if c2st_n else {})))
    bar.close()
    return row, arrays


def _md_value(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}={x:.3f}" for k, x in v.items())
    if isinstance(v, list):
        return " ".join(f"{x:.3g}" for x in v)
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}"
    return "n/a" if v is None else str(v)


def write_report(metrics: dict, figs: dict, out: Path, *, title: str, notes=()) -> None:
    """report.md (figures linked) and report.html (figures embedded, readable offline)."""
    keys = list(metrics)
    md = [f"# {title}", "",
          f"{metrics['n']} generated and {metrics.get('n_real', '?')} real sequences of {metrics['length']} bp.", ""]
    md += [f"> note: {n}" for n in notes] + ([""] if notes else [])
    md += ["| metric | value | reading |", "|---|---|---|"]
    md += [f"| {k} | {_md_value(metrics[k])} | {READINGS.get(k, '')} |" for k in keys]
    md += [""]
    for name, p in figs.items():
        md += [f"## {name}", "", FIGURE_TEXT.get(name, ""), "", f"![{name}]({Path(p).name})", ""]
    atomic_write_text(out / "report.md", "\n".join(md))

    esc = html.escape
    rows = "\n".join(f"<tr><td>{esc(k)}</td><td>{esc(_md_value(metrics[k]))}</td><td>{esc(READINGS.get(k, ''))}</td></tr>"
                     for k in keys)
    imgs = []
    for name, p in figs.items():
        b64 = base64.b64encode(Path(p).read_bytes()).decode("ascii")
        imgs.append(f'<figure id="{esc(name)}"><h2>{esc(name)}</h2><p>{esc(FIGURE_TEXT.get(name, ""))}</p>'
                    f'<img alt="{esc(name)}" src="data:image/png;base64,{b64}"></figure>')
    note_html = "".join(f"<p class='note'>note: {esc(n)}</p>" for n in notes)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}}
img{{max-width:100%}}.note{{background:#fff3cd;padding:4px 8px}}</style></head><body>
<h1>{esc(title)}</h1>
<p>{metrics['n']} generated and {metrics.get('n_real', '?')} real sequences of {metrics['length']} bp.</p>
{note_html}
<table><tr><th>metric</th><th>value</th><th>reading</th></tr>
{rows}
</table>
{''.join(imgs)}
</body></html>
"""
    atomic_write_text(out / "report.html", page)


def analyze(gen: np.ndarray, ref: np.ndarray, out_dir, *, train_segments=None, train=None,
            seed: int = 0, c2st: bool = True, motifs: str | None = None, title: str = "Generated vs real sequences",
            notes=(), progress: bool = True, labelled: dict | None = None, ref_groups=None, floor: bool = True,
            baseline=None, judge_device=None) -> dict:
    """labelled: fidelity_row's inputs ({"gen_labels", "train", "train_labels", "val", "val_labels",
    "label_names"}, optionally "val_groups" and "floor") when the reference has labels and the
    generated headers say which label each sequence was asked for: the conditional fidelity
    (analysis.fidelity) joins the figures. floor (with train) and baseline (an order-5 Markov
    chain's sequences): the C2ST's reading (judge_reading). judge_device: where every C2ST's judges
    train (None: the CPU)."""
    writable_dir(Path(out_dir))  # a folder that cannot be written fails before the metrics are computed
    floor = floor and train is not None
    # with the floor, the set is judged at the floor's size (its training windows can be fewer): one size
    # for every C2ST of the report, as compare_models.py and the benchmarks judge
    row, arrays = report_metrics(gen, ref, train=train, train_segments=train_segments, seed=seed,
                                 c2st=c2st, motifs=motifs, progress=progress, ref_groups=ref_groups,
                                 c2st_n=train.shape[0] if floor else None, judge_device=judge_device)
    if c2st and floor:
        row.update(judge_reading(row, ref, train, seed=seed, ref_groups=ref_groups, baseline=baseline,
                                 judge_device=judge_device))
        notes = (*notes, *reading_notes(row))
    if labelled is not None:
        from analysis.fidelity import fidelity_row

        f_row, f_arrays = fidelity_row(gen, seed=seed, c2st=c2st, judge_device=judge_device, **labelled)
        row.update(f_row)
        arrays["fidelity"] = f_arrays
    clean = _clean(row)
    if clean.get("c2st_underpowered"):
        notes = (*notes, f"underpowered: the C2ST saw {clean.get('c2st_n')} sequences a side (fewer than "
                         f"{M.UNDERPOWERED_N}); its AUC cannot separate models a few hundredths apart")
    with staged_dir(out_dir) as out:  # the report lands whole, or the earlier one stays
        _write_analysis(gen, ref, clean, arrays, out, title=title, notes=notes)
    return clean


def judge_reading(row: dict, ref, train, *, seed: int = 0, ref_groups=None, baseline=None, judge_device=None) -> dict:
    """Figures that say what ``row``'s C2ST means on this reference, as compare_models.py reads its
    rows: the real-vs-real floor (training windows against ``ref``, as many a side as the row's judge
    saw, which must not be more than ``train`` has: the same judge, size and folds) and where the row
    lies against it; with ``baseline`` (an order-5 Markov chain trained on the same training windows)
    the chain's C2ST and c2st_power, whether it reads above the floor
    (analysis.compare.judge_power_note). reading_notes words them."""
    n = int(row.get("c2st_n") or 0)
    if n > train.shape[0]:
        raise ValueError(f"the row was judged at {n} a side, more than the {train.shape[0]} training windows")
    if n < 10:
        return {}
    rng = np.random.default_rng(seed)
    judged = {"seed": seed, "real_groups": ref_groups, "max_n": n, "device": judge_device}
    floor = M.c2st_row(ref, train[rng.choice(train.shape[0], n, replace=False)], **judged)
    out = {"c2st_floor": floor["c2st_auc"], "c2st_floor_lo": floor["c2st_lo"], "c2st_floor_hi": floor["c2st_hi"],
           "c2st_vs_floor": versus_floor(row, floor)}
    if baseline is not None:
        b = M.c2st_row(ref, baseline, **judged)
        out.update(c2st_markov5=b["c2st_auc"], c2st_markov5_lo=b["c2st_lo"], c2st_markov5_hi=b["c2st_hi"],
                   c2st_power=versus_floor(b, floor) == "above the floor")
    return out


def reading_notes(row: dict) -> list[str]:
    """The report's and the terminal's words for judge_reading's figures in ``row``."""
    from analysis.compare import c2st_text, judge_power_note

    if "c2st_floor" not in row:
        return []
    floor = interval_of(row, "c2st_floor")
    notes = [f"the C2ST reads {c2st_text(row)}, {row['c2st_vs_floor']}: real training windows read "
             f"{c2st_text(floor)} against the same reference at the same size"]
    if "c2st_markov5" in row:
        chain = {"model": "markov-5 baseline", **interval_of(row, "c2st_markov5")}
        if row.get("c2st_power"):
            notes.append(f"the judge has power here: an order-5 Markov chain trained on the same windows reads "
                         f"{c2st_text(chain)}, above the floor")
        elif power := judge_power_note([chain], floor):
            notes.append(power)
    return notes


def interval_of(row: dict, key: str) -> dict:
    """row[key] and its interval (key_lo, key_hi) as a C2ST row ({"c2st_auc", "c2st_lo", "c2st_hi"}), the
    form analysis.compare.c2st_text and versus_floor read: the floor's or the chain's figures of a report."""
    return {"c2st_auc": row.get(key), "c2st_lo": row.get(f"{key}_lo"), "c2st_hi": row.get(f"{key}_hi")}


def _write_analysis(gen, ref, clean: dict, arrays: dict, out: Path, *, title: str, notes) -> None:
    figs = {
        "position_heatmap": plots.position_heatmaps(gen, ref, out / "position_heatmap.png"),
        "kmer3_heatmap": plots.kmer3_heatmap(gen, ref, out / "kmer3_heatmap.png"),
        "kmer4_scatter": plots.kmer_scatter(gen, ref, out / "kmer4_scatter.png"),
        "gc_distribution": plots.gc_overlay(gen, ref, out / "gc_distribution.png"),
        "composition": plots.composition_bars(gen, ref, out / "composition.png"),
        "homopolymer_runs": plots.homopolymer_plot(gen, ref, out / "homopolymer_runs.png"),
        "structure": plots.structure_panels(gen, ref, out / "structure.png"),
    }
    if arrays.get("motif_rates") is not None:
        figs["motifs"] = plots.motif_scatter(*arrays["motif_rates"], out / "motifs.png")
    if arrays.get("fidelity") is not None:
        f = arrays["fidelity"]
        figs["conditional_confusion"] = plots.confusion_heatmap(
            f["confusion"], f["label_names"], out / "conditional_confusion.png",
            ceiling=[clean.get(f"label_{n}_ceiling") or float("nan") for n in f["label_names"]])
    if arrays["nn_gen"] is not None:
        figs["nn_identity"] = plots.nn_identity_hist(arrays["nn_gen"], arrays["nn_ref"], out / "nn_identity.png")
    atomic_write_text(out / "metrics.json", json.dumps(clean, indent=2) + "\n")
    write_report(clean, figs, out, title=title, notes=notes)
