"""Model comparison: the same metric row (analysis.metrics.compare) for several generated sets
against one held-out reference, with the real-vs-real floor and the Markov baseline, sorted by
C2ST AUC; written as comparison.md/.csv/.html plus grouped figures."""
from __future__ import annotations

import base64
import csv
import html
import io
import math
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from analysis import metrics as M
from analysis import plots
from analysis.report import READINGS
from utils.outputs import staged_dir
from utils.sequences import atomic_write_text

COLUMNS = ["model", "n", "gc_mean", "gc_abs_diff", "js_2mer", "js_4mer", "js_6mer", "unique_fraction",
           "diversity", "exact_copies", "near_copies", "nn_identity_mean", "period3_gap", "orf_ks",
           "motif_pearson_r", "fd", "fd_lo", "fd_hi", "c2st_auc", "c2st_lo", "c2st_hi", "vs_floor",
           "conditional_accuracy", "conditional_ceiling", "conditional_chance"]
BAR_METRICS = ["c2st_auc", "fd", "js_4mer", "js_6mer", "gc_abs_diff", "diversity", "nn_identity_mean",
               "period3_gap", "orf_ks"]


def rows_for(sets: dict, ref, *, train=None, train_segments=None, seed: int = 0, c2st: bool = True,
             frechet: bool = True, motifs: str | None = None, c2st_n: int | None = None,
             ref_groups=None, judge_device=None) -> list[dict]:
    """One metric row a set (analysis.metrics.compare), best first; c2st_n: every set judged at that
    many sequences a side (at most), so that their C2STs and the floor's are read at one size;
    ref_groups: each reference window's block, kept in one fold by the judge; judge_device: where the
    judges train (None: the CPU)."""
    rows = []
    if motifs:
        from analysis.motifs import MotifReference

        motif_ref = MotifReference(ref, group=motifs, seed=seed)
    for name, gen in tqdm(sets.items(), desc="compare", disable=None, leave=False):
        r = M.compare(gen, ref, train=train, train_segments=train_segments, ks=(2, 4, 6), c2st=c2st,
                      frechet=frechet, seed=seed, c2st_n=c2st_n, ref_groups=ref_groups, judge_device=judge_device)
        r["diversity"] = M.mean_pairwise_hamming(gen, seed=seed)
        if motifs:
            r["motif_pearson_r"] = motif_ref.row(gen)[0]["motif_pearson_r"]
        rows.append({"model": name, **r})
    return sort_rows(rows)


def mark_floor(rows: list[dict], floor: dict) -> None:
    """vs_floor on each row: which of its intervals (C2ST AUC, Fréchet distance) overlap the real-vs-real
    floor's, i.e. where the row cannot be told from real DNA at this sample size; '-' where neither does.
    A row on fewer than 500 sequences a side is marked underpowered."""
    for r in rows:
        marks = []
        for m in ("c2st", "fd"):
            lo, hi = (("c2st_lo", "c2st_hi") if m == "c2st" else ("fd_lo", "fd_hi"))
            f_lo, f_hi = (floor.get(lo), floor.get(hi))
            if None not in (r.get(lo), r.get(hi), f_lo, f_hi) and r[lo] <= f_hi and f_lo <= r[hi]:
                marks.append(f"{m} overlaps floor")
        if r.get("c2st_underpowered"):
            marks.append("underpowered")
        r["vs_floor"] = "; ".join(marks) or "-"


def judge_power_note(rows: list[dict], floor: dict | None, baseline: str = "markov-5 baseline") -> str | None:
    """The judge's power measured on this reference: when the baseline's C2ST interval does not lie
    above the real-vs-real floor's, the judge cannot tell an order-5 chain from real DNA here, so no
    row's C2ST can rank the sets (lambda's 9.7 kb of held-out DNA is such a reference: docs/benchmarks.md,
    stops 22 and 51). None when the baseline reads above the floor, or when it or an interval is missing."""
    from analysis.judge import versus_floor

    b = next((r for r in rows if r.get("model") == baseline), None)
    if not floor or not b or versus_floor(b, floor) in ("above the floor", "n/a"):
        return None
    return (f"the judge has no power on this reference at this sample size: the {baseline}'s C2ST {c2st_text(b)} "
            f"does not read above the real-vs-real floor's {c2st_text(floor)}, so these C2ST figures cannot rank "
            "the sets; read the k-mer spectra (js_4mer, js_6mer) instead, or judge on more held-out DNA")


def sort_rows(rows: list[dict]) -> list[dict]:
    """Best first: ascending C2ST AUC (missing AUCs last)."""
    def key(r):
        v = r.get("c2st_auc")
        return (1, 0.0) if v is None or (isinstance(v, float) and math.isnan(v)) else (0, v)
    return sorted(rows, key=key)


def c2st_text(r: dict) -> str:
    """C2ST AUC with its 95% interval, e.g. '0.534 [0.528, 0.540]'."""
    if r.get("c2st_lo") is None:
        return _fmt(r.get("c2st_auc"))
    return f"{_fmt(r.get('c2st_auc'))} [{_fmt(r.get('c2st_lo'))}, {_fmt(r.get('c2st_hi'))}]"


def _fmt(v) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.4f}"
    return "n/a" if v is None else str(v)


def write(rows: list[dict], floor: dict | None, sets: dict, ref, out_dir, *, title: str, notes=()) -> dict:
    """comparison.csv/.md/.html and figures, landing in out_dir together (or not at all)."""
    with staged_dir(out_dir) as out:
        figs = _write(rows, floor, sets, ref, out, title=title, notes=notes)
    return {k: Path(out_dir) / Path(p).name for k, p in figs.items()}


def _write(rows: list[dict], floor: dict | None, sets: dict, ref, out: Path, *, title: str, notes=()) -> dict:
    cols = [c for c in COLUMNS if any(c in r for r in rows)]
    all_rows = rows + ([{"model": "real vs real (floor)", **floor}] if floor else [])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in all_rows:
        w.writerow({c: r.get(c, "") for c in cols})
    atomic_write_text(out / "comparison.csv", buf.getvalue())
    figs = {
        "metric_bars": plots.metric_bars(rows, [m for m in BAR_METRICS if m in cols], out / "comparison_metrics.png",
                                         floor=floor, readings=READINGS),
        "kmer_grid": plots.kmer_grid(sets, ref, out / "comparison_kmer3_grid.png"),
    }
    md = [f"# {title}", "", "Rows sorted by C2ST AUC (0.5 = indistinguishable from held-out real DNA); vs_floor "
          "names the intervals that overlap the real-vs-real floor's.", ""]
    md += [f"> note: {n}" for n in notes] + ([""] if notes else [])
    md += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in all_rows]
    md += ["", *[f"- {c}: {READINGS[c]}" for c in cols if c in READINGS], ""]
    md += [f"![{k}]({Path(p).name})" for k, p in figs.items()] + [""]
    atomic_write_text(out / "comparison.md", "\n".join(md))
    esc = html.escape
    trs = "\n".join("<tr>" + "".join(f"<td>{esc(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in all_rows)
    imgs = "".join(f'<figure><h2>{esc(k)}</h2><img alt="{esc(k)}" src="data:image/png;base64,'
                   f'{base64.b64encode(Path(p).read_bytes()).decode()}"></figure>' for k, p in figs.items())
    notes_html = "".join(f"<p>note: {esc(n)}</p>" for n in notes)
    atomic_write_text(out / "comparison.html", f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}img{{max-width:100%}}</style></head><body>
<h1>{esc(title)}</h1><p>Rows sorted by C2ST AUC (0.5 = indistinguishable from held-out real DNA).</p>{notes_html}
<table><tr>{''.join(f'<th>{esc(c)}</th>' for c in cols)}</tr>
{trs}</table>{imgs}</body></html>
""")
    return figs
