"""Which classifier should judge? Each candidate C2ST judge scores three sets against the held-out
blocks of E. coli 536 (70 bp): real training windows (the floor: they differ only by sampling),
markov-5 and markov-3 samples (known to differ, markov-3 more). The judge worth using separates
markov-5 from the floor most, with intervals that do not overlap, for its CPU time.

    python bench/judge_power.py [--n 20000] [--judges harness cnn17 dilated]

(dilated_wide is about 6x dilated's cost: some 15 CPU-minutes a set at 20,000 per side on 2 cores.)
"""
import argparse
import logging
import time

import numpy as np

from common import ROOT, judged_split, table, write_json

from analysis.judge import JUDGES, c2st
from models.registry import get_family
from train.engine import train
from utils.config import parse_set, resolve


def markov_sample(data, order: int, n: int, seed: int) -> np.ndarray:
    cfg = resolve("markov", get_family("markov").Config, {"train": {"seed": seed}}, parse_set([f"model.order={order}"]))
    res = train(cfg, data=data, save=False)
    return res.ensemble.sample(n, data.seq_len, seed=seed + 1).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT / "data/ecoli_536.fasta.gz"))
    ap.add_argument("--n", type=int, default=20000, help="sequences per side")
    ap.add_argument("--stride", type=int, default=35, help="step of the overlapping held-out windows")
    ap.add_argument("--judges", nargs="+", default=["harness", "cnn17", "dilated"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data, ref, _ = judged_split(args.data, 70, args.seed, args.stride)
    rng = np.random.default_rng(args.seed)
    sets = {"real train windows (floor)": data.train[rng.choice(data.train.shape[0], args.n, replace=False)],
            "markov-5": markov_sample(data, 5, args.n, args.seed), "markov-3": markov_sample(data, 3, args.n, args.seed)}
    print(f"{len(ref)} held-out windows (stride {args.stride}); {args.n} per side")
    rows = []
    for j in args.judges:
        row = {"judge": j, "receptive_field": JUDGES[j].receptive_field}
        t = time.perf_counter()
        for name, x in sets.items():
            r = c2st(ref, x, judge=j, seed=args.seed, max_n=args.n)
            key = name.split(" ")[0].replace("-", "")
            row.update({key: r["auc"], f"{key}_lo": r["lo"], f"{key}_hi": r["hi"]})
        row["seconds_per_set"] = (time.perf_counter() - t) / len(sets)
        row["markov5_minus_floor"] = row["markov5"] - row["real"]
        row["gap_in_ci"] = row["markov5_lo"] - row["real_hi"]  # > 0: intervals do not overlap
        rows.append(row)
        print(row, flush=True)
        write_json("judge_power", {"seed": args.seed, "n": args.n, "stride": args.stride, "rows": rows,
                                   "complete": len(rows) == len(args.judges)})
    print(table(rows, ["judge", "receptive_field", "real", "markov5", "markov3", "markov5_minus_floor", "gap_in_ci",
                       "seconds_per_set"]))
    best = max(rows, key=lambda r: r["markov5_minus_floor"])
    print(f"most separating: {best['judge']}")
    print(f"wrote {write_json('judge_power', {'seed': args.seed, 'n': args.n, 'stride': args.stride, 'rows': rows, 'complete': True, 'most_separating': best['judge']})}")


if __name__ == "__main__":
    main()
