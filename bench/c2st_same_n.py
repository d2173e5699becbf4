"""The C2ST at the sample size of a row: the same sets judged with n sequences a side, for several n.

    python bench/c2st_same_n.py --genomes s_suis --gen masked=PATH.fasta --n 2000 5000 20000

The judge is trained on the sets it scores (cross-fitted halves), so its power grows with n: a
generated set that sits at the floor with 2,000 sequences a side can be told apart with 20,000.
bench/genomes.py scores the slow sampler (masked) with 2,000 sequences and the other rows with 20,000;
this scores the real floor (training windows), markov-5 (trained and generating through the CLI as
in genomes.py) and any generated FASTA given with --gen NAME=PATH (its first n sequences) at each
n, against the same overlapping held-out windows, with the same judge and seed (and the judge's
default repeats, analysis.judge.REPEATS: each figure the mean of that many cross-fitted judges).
"""
import argparse

import numpy as np

from common import ROOT, judged_split, table, write_json
from genomes import GENOMES, trained_set, work

from analysis.judge import c2st
from utils.sequences import read_sequences


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--genomes", nargs="+", default=["s_suis"])
    ap.add_argument("--gen", nargs="*", default=[], metavar="NAME=FASTA",
                    help="generated sets of the first genome in --genomes (name=path)")
    ap.add_argument("--n", type=int, nargs="+", default=[2000, 5000, 20000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="", help="rows go to c2st_same_n_<tag>.json")
    ap.add_argument("--no_baselines", action="store_true", help="only the --gen sets (no floor, no markov-5)")
    args = ap.parse_args()
    name = "c2st_same_n" + (f"_{args.tag}" if args.tag else "")
    rows = []
    for i, g in enumerate(args.genomes):
        data, ref, _ = judged_split(ROOT / GENOMES[g], 70, args.seed, 10)
        sets = {}
        if not args.no_baselines:
            m5, _, _ = trained_set("markov", GENOMES[g], 0, max(args.n), work / "c2st_same_n" / g, ("--order", 5))
            rng = np.random.default_rng(args.seed)
            sets = {"real train windows (floor)": data.train[rng.permutation(data.train.shape[0])],
                    "markov-5": m5}
        if i == 0:
            sets.update({spec.split("=", 1)[0]: read_sequences(spec.split("=", 1)[1]) for spec in args.gen})
        for n in args.n:
            for label, x in sets.items():
                if x.shape[0] < n:
                    continue
                r = c2st(ref, x[:n], seed=args.seed, max_n=n)
                rows.append({"genome": g, "set": label, "n": r["n"], "c2st_auc": r["auc"], "c2st_lo": r["lo"],
                             "c2st_hi": r["hi"], "c2st_sd": r["sd"], "repeats": r["repeats"],
                             "c2st_interval": r.get("interval")})
                print(table(rows[-1:], list(rows[-1])), flush=True)
                write_json(name, {"seed": args.seed, "rows": rows})
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
