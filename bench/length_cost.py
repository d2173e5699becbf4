"""What a length costs: every generative family trained and sampled at --seq_len on E. coli 536.

    python bench/length_cost.py --seq_len 1000 --budget 300 [--families stacked gumbel seqgan masked] [--n 500]

Each family is trained as a user would (`main.py --mode train --curriculum --budget B --seq_len L`,
its own process; the length grows from 50 to L over 60% of the budget), then `--mode gen --n N`
from its best checkpoint, timed. Reported per family: epochs, the lengths the curriculum reached,
training sequences/s in the full-length epochs, the training process's peak resident memory (the
engine's peak_memory_mb), generation sequences/s (process start and checkpoint load included) and
the generated set's GC and 4-mer JS against held-out windows. Quality at length with the judge,
Fréchet distance and structure statistics is bench/quality.py's; this is about time and memory.
JSON: bench/results/length_cost_L<seq_len>[_<tag>].json.
"""
import argparse
import csv
import shutil
import time

import numpy as np

from common import ROOT, judged_split, table, write_json
from genomes import cli

from analysis import metrics as M
from utils.sequences import read_sequences

COLS = ["family", "epochs", "lengths", "train_s", "train_seq_per_s_full_length", "peak_memory_mb", "gen_n",
        "gen_s", "gen_seq_per_s", "gc", "js_4mer"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seq_len", type=int, default=1000)
    ap.add_argument("--budget", type=float, default=300)
    ap.add_argument("--families", nargs="+", default=["stacked", "gumbel", "seqgan", "masked"])
    ap.add_argument("--n", type=int, default=500, help="generated sequences per family")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="", help="suffix of the JSON's name (a run of some families beside an earlier one)")
    args = ap.parse_args()
    data_path = ROOT / "data/ecoli_536.fasta.gz"
    data, val, _ = judged_split(data_path, args.seq_len, args.seed, 35)
    out = {"seed": args.seed, "seq_len": args.seq_len, "budget": args.budget, "n": args.n, "rows": [],
           "command": f"python bench/length_cost.py --seq_len {args.seq_len} --budget {args.budget:g} --n {args.n} "
                      f"--families {' '.join(args.families)}"}
    name = f"length_cost_L{args.seq_len}" + (f"_{args.tag}" if args.tag else "")
    for fam in args.families:
        work = ROOT / "bench" / "results" / "work" / f"length_{fam}_{args.seq_len}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        secs = cli("--mode", "train", "--model", fam, "--data", data_path, "--seq_len", args.seq_len, "--budget",
                   args.budget, "--curriculum", "--seed", args.seed, "--run_dir", "run", "--checkpoint_dir", "ck",
                   "--overwrite", cwd=work)
        hist = list(csv.DictReader(open(work / "run" / "metrics.csv")))
        full = [float(r["seqs_per_s"]) for r in hist if int(r["length"]) == args.seq_len]
        t = time.perf_counter()
        cli("--mode", "gen", "--checkpoint", f"ck/{fam}_best.pt", "--n", args.n, "--output", "gen.fasta", cwd=work)
        gen_s = time.perf_counter() - t
        gen = read_sequences(work / "gen.fasta")
        out["rows"].append({
            "family": fam, "epochs": len(hist), "lengths": "/".join(dict.fromkeys(r["length"] for r in hist)),
            "train_s": secs, "train_seq_per_s_full_length": float(np.mean(full)) if full else float("nan"),
            "peak_memory_mb": max(float(r["peak_memory_mb"]) for r in hist), "gen_n": int(gen.shape[0]),
            "gen_s": gen_s, "gen_seq_per_s": gen.shape[0] / gen_s, "gc": float(M.gc_content(gen).mean()),
            "gc_ref": float(M.gc_content(val).mean()), "js_4mer": M.kmer_js(gen, val, 4)})
        print(table(out["rows"][-1:], COLS), flush=True)
        write_json(name, dict(out))
    print(table(out["rows"], COLS))


if __name__ == "__main__":
    main()
