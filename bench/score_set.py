"""Score a stored generated set as bench/genomes.py scores a row, beside the real floor's k-mer JS
at the set's own size.

    python bench/score_set.py --genome s_suis --fasta path/gen20k.fasta --tag masked_monitor_20k

For a set generated apart from genomes.py (e.g. 20,000 sequences from the best.pt of a row that
genomes.py scored on --slow_n sequences): the same held-out reference (windows every --ref_stride
bases of the held-out blocks), the same analysis.metrics.compare at the floor's judge size
(min(training windows, reference windows, --n)), and the 4-mer JS of --floor_draws draws of as many
real training windows as the set has, since the plug-in JS grows as the sample shrinks
(bench/js_same_n.py). Writes bench/results/score_set_<tag>.json.
"""
import argparse

import numpy as np

from common import ROOT, judged_split, table, write_json
from genomes import GENOMES, floor_size

from analysis import metrics as M
from utils.sequences import read_sequences

COLS = ["genome", "set", "n", "js_4mer", "floor_js_4mer", "js_6mer", "c2st_auc", "c2st_lo", "c2st_hi", "c2st_n"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--genome", choices=list(GENOMES), required=True)
    ap.add_argument("--fasta", required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--n", type=int, default=20000, help="the judge's size at most (genomes.py's --n)")
    ap.add_argument("--ref_stride", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--floor_draws", type=int, default=3)
    args = ap.parse_args()
    data, ref, _ = judged_split(ROOT / GENOMES[args.genome], 70, args.seed, args.ref_stride)
    gen = read_sequences(args.fasta)
    rng = np.random.default_rng(args.seed)
    n = min(gen.shape[0], data.train.shape[0])
    floor = [M.kmer_js(data.train[rng.choice(data.train.shape[0], n, replace=False)], ref, 4)
             for _ in range(args.floor_draws)]
    judge_n = floor_size(data, ref, args.n)
    row = {"genome": args.genome, "set": args.fasta, "n": int(gen.shape[0]), "floor_js_4mer": float(np.mean(floor)),
           "floor_js_4mer_draws": floor, **M.compare(gen, ref, ks=(4, 6), seed=args.seed, c2st_n=judge_n)}
    print(table([row], COLS))
    write_json(f"score_set_{args.tag}", {"seed": args.seed, "ref_stride": args.ref_stride, "rows": [row]})


if __name__ == "__main__":
    main()
