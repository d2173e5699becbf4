"""Quality on genomes nobody tuned on: every family trained as a user would, scored by the judge.

    python bench/genomes.py --budget 300 [--genomes s_suis ...] [--families stacked gumbel ...] [--n 20000]
    python bench/genomes.py --budget 300 --families gumbel --no_baselines --tag ngram \
        --train_args "--set model.ngram_order=5 --set model.ngram_refit=32768"   # a candidate default

For each genome (data/genomes/SOURCES.md) and family: `main.py --mode train --model F --data G
--budget B` in its own process with the family's defaults, then `--mode gen --checkpoint
<F>_best.pt --n N` (the file README tells users to generate from), then the generated set is
scored against overlapping windows of the held-out blocks (every --ref_stride bases) by
analysis.metrics.compare (4-mer JS, GC, the judge's C2ST with its 95% interval). Rows for the real
floor (training windows), markov-3 and markov-5 (also through the CLI) come first. One JSON per
budget: bench/results/genomes_<budget>.json, rewritten after every row; rows of genomes not named
in --genomes are kept from the earlier file when it used the same --n, --seed, --ref_stride and
--judge_n.

--judge_n even (the default since stop 38) judges every row of a genome at one size, the floor's:
min(training windows, held-out windows, --n). The judge's AUC grows with its sample (it partly
learns the overlapping held-out windows' own bases), so with --judge_n each (before stop 38) a
small genome's floor, judged at its training-window count, sat below families judged at the larger
held-out count: on phage T4 the families read 0.63-0.66 at 3,350 a side and 0.58-0.59 at the
floor's 1,928 (floor 0.56; docs/benchmarks.md, "Phage T4").

--select_apart trains every set with `--select_apart` (half of the held-out blocks pick best.pt, the
other half are judged) and scores every row, the floor and markov rows too, against the judged half
only: rows in which the blocks that judge a model never chose it (docs/benchmarks.md, "Picking
best.pt on the blocks the judge scores"). They compare with each other, not with the other files'
rows, whose reference is all the held-out blocks. --judge_half alone judges against that half but
trains as by default (best.pt picked on all the held-out blocks): the same run's control, paired
with --select_apart's rows on one reference, so the difference is the selection's lean.

--block_size B splits every genome in blocks of B bases (data.block_size; every set trains on its
training blocks) and --grouped_folds keeps each block's windows in one fold of the judge, the
floor's by training segment: measuring tools for a genome whose few held-out blocks the judge can
learn (lambda; docs/benchmarks.md, "Lambda in finer blocks"). Their rows compare with each other only.
"""
import argparse
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import ROOT, judged_split, provenance, table, write_json

from analysis import metrics as M
from models.markov import PHASED_SETS
from train.engine import read_metrics
from train.judging import judged_rows
from utils.sequences import read_sequences

GENOMES = {
    "m_tuberculosis": "data/genomes/m_tuberculosis_h37rv.fasta.gz",
    "s_suis": "data/genomes/s_suis_sc84.fasta.gz",
    "human_stretches": "data/genomes/human_grch37_stretches.fasta.gz",
    "lambda": "data/example_genome.fasta",
    "t4": "data/genomes/t4_phage.fasta.gz",
}
FAMILIES = ["stacked", "gumbel", "seqgan", "masked", "markov"]
# one model pass per base (~25 sequences/s on 2 cores): --slow_n N scores these on fewer sequences, quicker,
# but a C2ST at another n does not compare with the other rows (the judge's power grows with n:
# docs/benchmarks.md, "Masked at 20,000 sequences"), so by default every row has --n
SLOW_SAMPLERS = ("masked",)
work = ROOT / "bench" / "results" / "work" / "genomes"
# baseline rows: the row's name -> main.py flags of its markov run ("floor": the real training windows)
PHASED = "markov phased"  # order at most 5, lower where the data are few (model.min_cell_bases)
HMM = "markov phased hmm"  # the phased mixture whose hidden state may switch at any base (model.hmm)
_PHASED_FLAGS = ("--order", 5, *(a for s in PHASED_SETS for a in ("--set", s)))
BASELINES = {"floor": (), "markov-3": ("--order", 3), "markov-5": ("--order", 5),
             PHASED: _PHASED_FLAGS, HMM: (*_PHASED_FLAGS, "--set", "model.hmm=true")}
DEFAULT_BASELINES = ("floor", "markov-3", "markov-5")
COLS = ["genome", "set", "js_4mer", "gc_abs_diff", "unique_fraction", "c2st_auc", "c2st_lo", "c2st_hi", "train_s"]


def cli(*argv, cwd: Path) -> float:
    """Run main.py as a user would (its own process, all cores); returns seconds."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, argv)], cwd=cwd, capture_output=True,
                       text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if r.returncode != 0:
        raise SystemExit(f"main.py {' '.join(map(str, argv))} failed:\n{r.stderr[-2000:]}")
    return time.perf_counter() - t


RUN_FIGURES = ("epoch", "elapsed_s", "val_nll", "refit_iters", "refit_cut", "refit_skipped", "refit_kept",
               "refit_val_nll_before", "refit_val_nll_after", "finish_s", "reserve_s", "fit_priced_s",
               "refit_frozen_s", "refit_solve_s")


def run_summary(run_dir: Path) -> dict:
    """The training run's last metrics.csv row, the figures that say how it spent its budget: epochs,
    the clock when its last epoch ended, the closing fit's iterations (cut or skipped) and seconds,
    and (best_*) the delivered best checkpoint's epoch and fit where it is an earlier epoch's."""
    path = run_dir / "metrics.csv"
    if not path.exists():
        return {}
    rows = read_metrics(path)
    last = rows[-1]
    out = {k: v for k, v in last.items() if (k in RUN_FIGURES or k.startswith("best_")) and v != ""}
    return {**out, **monitor_judge(rows)}


def monitor_judge(rows: list[dict]) -> dict:
    """The per-epoch judge's figures of a run (train/judging.py): epochs judged, their seconds, and each
    judged epoch's (epoch, C2ST, lo, hi, floor); empty for a run that judged none."""
    judged = judged_rows(rows)
    if not judged:
        return {}
    return {"judged_epochs": len(judged), "judge_s": float(sum(r["judge_s"] for r in judged)),
            "judged": [[r["epoch"], r["val_c2st"], r["val_c2st_lo"], r["val_c2st_hi"], r["c2st_floor"]]
                       for r in judged]}


def trained_set(family: str, data: str, budget: float, n: int, work: Path, extra=()) -> tuple[np.ndarray, float, dict]:
    shutil.rmtree(work, ignore_errors=True)  # every row from a fresh run, nothing left from an earlier one
    work.mkdir(parents=True)
    secs = cli("--mode", "train", "--model", family, "--data", ROOT / data, "--budget", budget, "--run_dir", "run",
               "--checkpoint_dir", "ck", "--overwrite", *extra, cwd=work)
    cli("--mode", "gen", "--checkpoint", f"ck/{family}_best.pt", "--n", n, "--output", "gen.fasta", cwd=work)
    return read_sequences(work / "gen.fasta"), secs, run_summary(work / "run")


def floor_size(data, ref, n: int) -> int:
    """The size every set of a genome is judged at (--judge_n even): the floor's, min(training windows,
    held-out reference windows, n)."""
    return min(data.train.shape[0], ref.shape[0], n)


def floor_set(data, n: int, seed: int, grouped: bool):
    """The floor's set: at most n real training windows, drawn at random, and with grouped (the judge's
    folds keeping a block together) each window's training segment (the training blocks between two
    held-out ones), else None."""
    from analysis.judge import heldout_windows

    rng = np.random.default_rng(seed)
    if not grouped:
        return data.train[rng.choice(data.train.shape[0], min(n, data.train.shape[0]), replace=False)], None
    windows, groups = heldout_windows(data.train_segments, data.train.shape[1], data.train.shape[1], groups=True)
    pick = rng.choice(windows.shape[0], min(n, windows.shape[0]), replace=False)
    return windows[pick], groups[pick]


def earlier_rows(name: str, args) -> list[dict]:
    path = ROOT / "bench" / "results" / f"{name}.json"
    if not path.exists():
        return []
    old = json.loads(path.read_text())
    if ((old.get("n"), old.get("seed"), old.get("ref_stride", args.ref_stride), old.get("judge_n", "each"),
         old.get("select_apart", False), old.get("judge_half", False))
            != (args.n, args.seed, args.ref_stride, args.judge_n, args.select_apart, args.judge_half)
            or (old.get("block_size"), old.get("grouped_folds", False)) != (args.block_size, args.grouped_folds)):
        return []  # a different protocol: its rows are not comparable, start afresh
    return old["rows"]  # rows written before stop 24 carry no made_by: their run is not known from the file


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=300)
    ap.add_argument("--genomes", nargs="+", default=list(GENOMES))
    ap.add_argument("--families", nargs="*", default=FAMILIES, help="trained families (none: baseline rows only)")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--ref_stride", type=int, default=10)
    ap.add_argument("--slow_n", type=int, default=0, help=f"sequences for the slow samplers {SLOW_SAMPLERS}, "
                    "default --n (masked: about 14 min of generation at 20,000); fewer is quicker, but its C2ST "
                    "then does not compare with the other rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--judge_n", choices=["even", "each"], default="even",
                    help="even: every row of a genome judged at the floor's size (min of training windows, held-out "
                         "windows, --n); each: every set at min(its size, held-out windows), the protocol before stop 38")
    ap.add_argument("--tag", default="", help="a candidate's name: rows go to genomes_<budget>_<tag>.json")
    ap.add_argument("--train_args", default="", help="extra main.py flags for every trained family, e.g. "
                    "'--set model.ngram_order=5' (a candidate default, measured on every genome)")
    ap.add_argument("--no_baselines", action="store_true", help="skip the floor and markov rows (a candidate run)")
    ap.add_argument("--baselines", nargs="*", choices=list(BASELINES), default=list(DEFAULT_BASELINES),
                    help=f"baseline rows (default {' '.join(DEFAULT_BASELINES)}); {PHASED} is the phased Markov "
                         f"mixture (models/markov.py: codon phase and several chains, fitted by EM), {HMM!r} the same "
                         "with a hidden state that may switch at any base")
    ap.add_argument("--baseline_args", default="", help="extra main.py flags for the markov baseline rows, e.g. "
                    "'--set train.seed=1' (the phased mixture's EM starts from a seeded random assignment)")
    ap.add_argument("--block_size", type=int, default=None,
                    help="data.block_size of every set's split (bases; default the config's 10,000, made smaller for "
                         "short genomes so that a record has at least 20 blocks): every set trains on its training "
                         "blocks and is judged against its held-out ones")
    ap.add_argument("--grouped_folds", action="store_true",
                    help="the judge's folds keep each block's windows together (held-out windows by held-out block, the "
                         "floor's by training segment, the training blocks between two held-out ones; analysis.judge.c2st real_groups), its interval a block bootstrap")
    ap.add_argument("--select_apart", action="store_true",
                    help="train with --select_apart and judge every row against the held-out blocks that did not pick it")
    ap.add_argument("--judge_half", action="store_true",
                    help="judge against --select_apart's judged half, training as by default (the paired control)")
    args = ap.parse_args(argv)
    args.judge_half = args.judge_half or args.select_apart
    return args


def main():
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    name = f"genomes_{args.budget:g}" + (f"_{args.tag}" if args.tag else "")
    apart = ("--select_apart",) if args.select_apart else ()
    split = ("--set", f"data.block_size={args.block_size}") if args.block_size else ()
    extra = tuple(shlex.split(args.train_args)) + apart + split
    # rows of genomes not run this time are kept, so genomes can be benchmarked in separate sittings
    rows = [r for r in earlier_rows(name, args) if r["genome"] not in args.genomes]
    # the file's header is its last run's; each row keeps the run that made it (kept rows their own)
    made_by = {"date": time.strftime("%Y-%m-%d %H:%M"),
               **{k: v for k, v in provenance(args.seed).items() if k in ("argv", "git_commit", "git_dirty")}}
    for g in args.genomes:
        load_kw = {"block_size": args.block_size} if args.block_size else {}
        data, ref, ref_groups = judged_split(ROOT / GENOMES[g], 70, args.seed, args.ref_stride,
                                             select_apart=args.judge_half, **load_kw)
        floor, floor_groups = floor_set(data, args.n, args.seed, args.grouped_folds)
        base_dir = Path(work) / g if not args.block_size else Path(work) / f"block{args.block_size}" / g
        sets = []
        set_groups = {}  # label -> each window's group, for a set of real windows (the floor's, with --grouped_folds)
        for b in () if args.no_baselines else args.baselines:
            if b == "floor":
                sets.append(("real train windows (floor)", lambda: (floor, 0.0, {})))
                set_groups["real train windows (floor)"] = floor_groups
            else:
                sets.append((b, lambda b=b: trained_set("markov", GENOMES[g], 0, args.n, base_dir / b,
                                                        (*BASELINES[b], *shlex.split(args.baseline_args), *apart,
                                                         *split))))
        n_of = {f: min(args.n, args.slow_n or args.n) if f in SLOW_SAMPLERS else args.n for f in args.families}
        sets += [(f, lambda f=f: trained_set(f, GENOMES[g], args.budget, n_of[f],
                                             Path(work) / f"budget{args.budget:g}" / g / (f + (f"_{args.tag}" if args.tag else "")), extra))
                 for f in args.families if f != "markov"]
        judge_n = floor_size(data, ref, args.n) if args.judge_n == "even" else None  # None: each set at its own
        for label, make in sets:
            gen, secs, run = make()
            groups = {"ref_groups": ref_groups, "gen_groups": set_groups.get(label)} if args.grouped_folds else {}
            row = {"genome": g, "set": label, "made_by": made_by, "train_s": secs, "run": run,
                   "n_train_windows": int(data.train.shape[0]), "n_ref": int(ref.shape[0]),
                   "held_out_blocks": len(data.val_segments),
                   **M.compare(gen, ref, ks=(4, 6), seed=args.seed, c2st_n=judge_n, **groups)}
            rows.append(row)
            print(table([row], COLS), flush=True)
            write_json(name, {"seed": args.seed, "budget": args.budget, "n": args.n, "ref_stride": args.ref_stride,
                              "judge_n": args.judge_n, "select_apart": args.select_apart, "judge_half": args.judge_half,
                              "block_size": args.block_size, "grouped_folds": args.grouped_folds,
                              "train_args": args.train_args, "baseline_args": args.baseline_args, "rows": rows})
    print(table(rows, COLS))


if __name__ == "__main__":
    main()
