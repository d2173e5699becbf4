"""Conditional generation in every family: does a sequence asked for a label look like that label's
real DNA, and does a sequence asked for a GC content have it?

    python bench/conditional.py --budget 300 --gc_budget 180

Labels (data/labelled_example.fasta: phage lambda, E. coli 536, S. suis SC84; bench/make_labelled_example.py):
each family is trained as a user would (`main.py --mode train --model F --data
data/labelled_example.fasta --budget B`, its own process, the labels read from the headers), then
its best checkpoint generates --n sequences of each label (`--label`). analysis.fidelity's classifier,
trained on the real training windows (every 14 bases), reports per label the fraction assigned to
the requested label against its accuracy on real held-out windows (the ceiling) and chance, and
the label's GC, 4-mer JS and C2ST (the default judge) against overlapping windows of that label's
held-out blocks (every --ref_stride bases), beside the label's real-vs-real floor (its training
windows against the same held-out windows). Every C2ST of one label, the floor's included, is
judged with the same number of sequences a side (the smallest of the label's held-out windows,
training windows and generated sequences), since a judge's AUC grows with its sample; and with
grouped folds (--folds grouped, the default): the overlapping windows of one held-out block share a
fold and the interval is a block bootstrap, so the judge cannot learn the held-out blocks' own
bases from one window's neighbours (docs/benchmarks.md, "The judge's folds"). The floor's training
windows are judged exactly as a generated set (random folds on their side); the floor with their
blocks in folds too is reported beside it (floor_blocks_c2st). --folds random is the
protocol of the rows before stop 37. The guided families (stacked, gumbel, seqgan, masked)
are sampled at every classifier-free guidance weight of --guidance (default 1 and 2; the same
checkpoint, the same seeds).

GC: each family that takes --gc is trained with --condition gc on E. coli 536 (--gc_budget), and for
each of the 5 quantile bins asked for that bin's mean training GC; the mean obtained GC of --n_gc
sequences is reported against it, twice: from the GC class alone (`--gc_tilt off`) and with the
calibrated C/G logit tilt (`--gc_tilt auto`, the default of --mode gen: Ensemble.calibrate_gc on pilot
batches of other seeds), each with its 4-mer JS against the training windows of that bin (what
the tilt costs in realism).

Rows go to bench/results/conditional.json (conditional_<tag>.json with --tag), rewritten after every row.
"""
import argparse
import logging
import shutil
import sys
from pathlib import Path

import numpy as np

from common import ROOT, table, write_json
from genomes import cli

from analysis import metrics as M
from analysis.fidelity import LabelClassifier, fidelity_row
from analysis.judge import heldout_windows
from utils.sequences import load_sequences

LABELLED = "data/labelled_example.fasta"
GC_DATA = "data/ecoli_536.fasta.gz"
FAMILIES = ["markov", "stacked", "gumbel", "seqgan", "masked"]
GUIDED = {"stacked", "gumbel", "seqgan", "masked"}
GC_FAMILIES = ["stacked", "gumbel", "seqgan", "masked"]
SLOW = {"masked": 0.5}  # share of --n for the slow sampler (one model pass per base)
work = ROOT / "bench" / "results" / "work" / "conditional"
COLS = ["family", "guidance", "label", "accuracy", "ceiling", "chance", "gc", "gc_ref", "js_4mer", "c2st_n",
        "c2st_auc", "c2st_lo", "c2st_hi", "floor_c2st", "c2st_gap"]
GC_COLS = ["family", "bin", "range", "asked_gc", "class_only_gc", "class_only_abs_diff", "class_only_js_4mer", "tilt",
           "obtained_gc", "abs_diff", "js_4mer", "obtained_std", "in_bin"]


def train(family: str, data: str, budget: float, where: Path, extra=(), reuse: bool = False) -> tuple[Path, float]:
    if reuse and (where / "ck" / f"{family}_best.pt").exists():
        return where / "ck" / f"{family}_best.pt", float("nan")  # an earlier run's checkpoint: no training time
    if reuse:
        print(f"--reuse: no checkpoint at {where / 'ck' / f'{family}_best.pt'}: training {family}", flush=True)
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    args = ("--order", 5) if family == "markov" else ("--budget", budget)
    secs = cli("--mode", "train", "--model", family, "--data", ROOT / data, "--run_dir", "run", "--checkpoint_dir",
               "ck", "--overwrite", *args, *extra, cwd=where)
    return where / "ck" / f"{family}_best.pt", secs


def judge(ref, name, x, args, x_groups=None) -> dict:
    """C2ST of x against the label's held-out windows at the label's common sample size (the
    smallest of its held-out windows, training windows and x); grouped folds unless --folds random."""
    held, held_groups = ref["heldout"][name], ref["heldout_groups"][name]
    n = min(held.shape[0], ref["floor"][name][0].shape[0], x.shape[0])
    grouped = args.folds == "grouped"
    r = M.c2st_row(held, x, seed=args.seed, max_n=n, real_groups=held_groups if grouped else None,
                   gen_groups=x_groups if grouped else None)
    return {k: r[k] for k in ("c2st_n", "c2st_auc", "c2st_lo", "c2st_hi", "c2st_sd")}


def floor(ref, name, n, args, blocks: bool = False) -> dict:
    """The label's real-vs-real floor at n a side, computed once per (label, n): its training windows
    judged exactly as a generated set is (their side in random folds); blocks=True also puts the
    training side's blocks in folds (a judge that learns one training block's composition then meets
    other blocks when scored, and can fall below 0.5 when there are few: reported beside it)."""
    key = (name, n, blocks)
    if key not in ref["floors"]:
        x, groups = ref["floor"][name]
        pick = np.random.default_rng(args.seed).choice(x.shape[0], min(n, x.shape[0]), replace=False)
        ref["floors"][key] = judge(ref, name, x[pick], args, groups[pick] if blocks else None)
    return ref["floors"][key]


def label_rows(family, ens, data, ref, args, guidance=None) -> list[dict]:
    n = int(args.n * SLOW.get(family, 1.0))
    names = list(data.label_names)
    gen = np.concatenate([ens.sample(n, seed=args.seed + 7919 * j, label=name, guidance=guidance).numpy()
                          for j, name in enumerate(names)])
    asked = [name for name in names for _ in range(n)]
    f, _ = fidelity_row(gen, asked, ref["train"], ref["train_labels"], data.val, data.val_labels, names,
                        seed=args.seed, c2st=False, classifier=ref["classifier"])
    rows = [{"family": family, "guidance": guidance or 1.0, "label": "all", "accuracy": f["conditional_accuracy"],
             "ceiling": f["conditional_ceiling"], "chance": f["conditional_chance"], "n": n}]
    for j, name in enumerate(names):
        mine = gen[j * n : (j + 1) * n]
        c = judge(ref, name, mine, args)
        fl = floor(ref, name, c["c2st_n"], args)
        fb = floor(ref, name, c["c2st_n"], args, blocks=True) if args.folds == "grouped" else {}
        rows.append({"family": family, "guidance": guidance or 1.0, "label": name, "n": n,
                     "accuracy": f[f"label_{name}_accuracy"], "ceiling": f[f"label_{name}_ceiling"],
                     "chance": f["conditional_chance"], "gc": f[f"label_{name}_gc"],
                     "gc_ref": float(M.gc_content(ref["heldout"][name]).mean()),
                     "js_4mer": M.kmer_js(mine, ref["heldout"][name], 4), **c, "floor_c2st": fl["c2st_auc"],
                     "floor_lo": fl["c2st_lo"], "floor_hi": fl["c2st_hi"], "c2st_gap": c["c2st_auc"] - fl["c2st_auc"],
                     "floor_blocks_c2st": fb.get("c2st_auc"), "folds": args.folds})
    return rows


def gc_rows(family, ens, data, args) -> list[dict]:
    edges = ens.members[0]["classes"].edges.cpu().numpy()
    gc_train = M.gc_content(data.train)
    bins = np.searchsorted(edges, gc_train, side="right")
    n = int(args.n_gc * SLOW.get(family, 1.0))
    rows = []
    for b in range(len(edges) + 1):
        lo = 0.0 if b == 0 else float(edges[b - 1])
        hi = 1.0 if b == len(edges) else float(edges[b])
        ask = float(gc_train[bins == b].mean())
        real = data.train[bins == b]
        plain = ens.sample(n, seed=args.seed + b, gc=ask).numpy()
        tilt, _, draws = ens.calibrate_gc(ask, seed=args.seed + 104729 + b)  # pilot seeds differ from the rows'
        x = ens.sample(n, seed=args.seed + b, gc=ask, gc_tilt=tilt).numpy()
        got, got0 = M.gc_content(x), M.gc_content(plain)
        rows.append({"family": family, "bin": b, "range": f"[{lo:.3f}, {hi:.3f})", "asked_gc": ask,
                     "class_only_gc": float(got0.mean()), "class_only_abs_diff": abs(float(got0.mean()) - ask),
                     "class_only_js_4mer": M.kmer_js(plain, real, 4), "tilt": tilt, "pilot_batches": draws,
                     "obtained_gc": float(got.mean()), "obtained_std": float(got.std()),
                     "abs_diff": abs(float(got.mean()) - ask), "js_4mer": M.kmer_js(x, real, 4),
                     "in_bin": float(((got >= lo) & (got < hi)).mean()), "n": n})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=300, help="training seconds per family (labels)")
    ap.add_argument("--gc_budget", type=float, default=180, help="training seconds per family (--condition gc)")
    ap.add_argument("--families", nargs="+", default=FAMILIES)
    ap.add_argument("--n", type=int, default=2000, help="generated sequences per label")
    ap.add_argument("--n_gc", type=int, default=1000, help="generated sequences per GC bin")
    ap.add_argument("--ref_stride", type=int, default=10)
    ap.add_argument("--folds", choices=["grouped", "random"], default="grouped",
                    help="the judge's folds: grouped by block (default) or random (the protocol before stop 37)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip_gc", action="store_true")
    ap.add_argument("--skip_labels", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="passed to every labelled family's training (e.g. train.label_balance=1)")
    ap.add_argument("--tag", default="", help="suffix of the JSON name (and of the families' work folders)")
    ap.add_argument("--data", default=LABELLED, help="the labelled FASTA (bench/make_labelled_example.py "
                    "--stretches N --out F writes a larger one from the same genomes)")
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0], metavar="W",
                    help="guidance weights sampled for the guided families (stacked, gumbel, seqgan, masked); 1 = plain conditional")
    ap.add_argument("--reuse", action="store_true",
                    help="generate from an earlier run's checkpoints under bench/results/work/conditional where present")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from train.engine import load_ensemble

    out = {"seed": args.seed, "budget": args.budget, "gc_budget": args.gc_budget, "n": args.n, "n_gc": args.n_gc,
           "ref_stride": args.ref_stride, "folds": args.folds, "label_rows": [], "gc_rows": [], "train_s": {},
           "data": args.data, "command": " ".join(["python bench/conditional.py", *sys.argv[1:]])}
    if not args.skip_labels:
        data = load_sequences(ROOT / args.data, 70, val_fraction=0.2, seed=42)  # the split training makes
        dense = load_sequences(ROOT / args.data, 70, val_fraction=0.2, seed=42, stride=14)
        ref = {"train": dense.train, "train_labels": dense.train_labels, "heldout": {}, "heldout_groups": {},
               "floor": {}, "floors": {},
               # one fidelity classifier for every row of the run: their accuracies and ceilings share it
               "classifier": LabelClassifier(dense.train, dense.train_labels, len(dense.label_names), seed=args.seed)}
        for name in data.label_names:  # overlapping windows of the label's held-out blocks, each window's block
            ref["heldout"][name], ref["heldout_groups"][name] = heldout_windows(
                _segments(data, name, "val"), 70, args.ref_stride, groups=True)
            ref["floor"][name] = heldout_windows(_segments(data, name, "train"), 70, 70, groups=True)
        out["floors"] = {}
        for name in data.label_names:  # at the largest common size: what a family sampled at --n is judged at
            n = min(args.n, ref["heldout"][name].shape[0], ref["floor"][name][0].shape[0])
            f = floor(ref, name, n, args)
            fb = floor(ref, name, n, args, blocks=True) if args.folds == "grouped" else {}
            out["floors"][name] = {**f, "blocks_c2st_auc": fb.get("c2st_auc"), "n_heldout": int(ref["heldout"][name].shape[0]),
                                   "n_train": int(ref["floor"][name][0].shape[0])}
        for family in args.families:
            ck, secs = train(family, args.data, args.budget, work / (family + (f"_{args.tag}" if args.tag else "")),
                             tuple(x for kv in args.set for x in ("--set", kv)), reuse=args.reuse)
            out["train_s"][family] = secs
            ens, _ = load_ensemble(ck, device="cpu")
            for guidance in args.guidance if family in GUIDED else (None,):  # Ensemble.sample: W = 1 is the plain conditional
                rows = label_rows(family, ens, data, ref, args, guidance)
                out["label_rows"] += rows
                print(table(rows, COLS), flush=True)
                out["floors_by_n"] = [{"label": k[0], "n": k[1], "training_blocks_in_folds": k[2], **v}
                                      for k, v in ref["floors"].items()]
                write_json("conditional" + (f"_{args.tag}" if args.tag else ""), dict(out))
    if not args.skip_gc:
        gc_data = load_sequences(ROOT / GC_DATA, 70, val_fraction=0.2, seed=42)
        for family in [f for f in args.families if f in GC_FAMILIES]:
            ck, secs = train(family, GC_DATA, args.gc_budget, work / f"{family}_gc", ("--condition", "gc"), args.reuse)
            out["train_s"][f"{family}_gc"] = secs
            ens, _ = load_ensemble(ck, device="cpu")
            rows = gc_rows(family, ens, gc_data, args)
            out["gc_rows"] += rows
            print(table(rows, GC_COLS), flush=True)
            write_json("conditional" + (f"_{args.tag}" if args.tag else ""), dict(out))
    print(table(out["label_rows"], COLS))
    print(table(out["gc_rows"], GC_COLS))


def _segments(data, name, which: str = "val") -> list:
    """The held-out ("val") or training ("train") segments of one label, by each segment's own label
    (before stop 59 read from the windows in segment order, which holds only for non-overlapping,
    uncapped windows)."""
    k = data.label_names.index(name)
    segs, labels = ((data.val_segments, data.val_segment_labels) if which == "val"
                    else (data.train_segments, data.train_segment_labels))
    return [seg for seg, lab in zip(segs, labels) if lab == k]


if __name__ == "__main__":
    main()
