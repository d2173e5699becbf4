"""k-mer JS at the sample size of a row: the real floor and markov-5 at --n sequences.

    python bench/js_same_n.py --genomes s_suis m_tuberculosis --n 2000 20000

The plug-in Jensen-Shannon divergence of two k-mer spectra grows as the sample shrinks: 2,000
real training windows of S. suis sit at 4-mer JS 0.00054 against its held-out windows, 20,000 at
0.00023. bench/genomes.py scores masked with 2,000 sequences (its sampler makes one model pass per
base) and the markov rows with 20,000, so a masked row's JS is compared here with the floor's and
markov-5's at the same n: markov-5 trained and generating through the CLI as in genomes.py, its
first n sequences scored, and n real training windows drawn without replacement.
"""
import argparse
import shutil
import subprocess
import sys

import numpy as np

from common import ROOT, judged_split, table, write_json
from genomes import GENOMES, work

from analysis import metrics as M
from utils.sequences import read_sequences


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--genomes", nargs="+", default=list(GENOMES))
    ap.add_argument("--n", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--k", type=int, nargs="+", default=[4, 6])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = []
    for g in args.genomes:
        data, ref, _ = judged_split(ROOT / GENOMES[g], 70, args.seed, 10)
        w = work / "js_same_n" / g
        shutil.rmtree(w, ignore_errors=True)
        w.mkdir(parents=True)
        for argv in (["--mode", "train", "--model", "markov", "--order", "5", "--data", str(ROOT / GENOMES[g]),
                      "--checkpoint_dir", "ck", "--run_dir", "run", "--overwrite"],
                     ["--mode", "gen", "--checkpoint", "ck/markov_best.pt", "--n", str(max(args.n)),
                      "--output", "gen.fasta"]):
            subprocess.run([sys.executable, str(ROOT / "main.py"), *argv], cwd=w, check=True, capture_output=True)
        m5 = read_sequences(w / "gen.fasta")
        rng = np.random.default_rng(args.seed)
        for n in args.n:
            real = data.train[rng.choice(data.train.shape[0], min(n, data.train.shape[0]), replace=False)]
            for name, x in (("real train windows (floor)", real), ("markov-5", m5[:n])):
                rows.append({"genome": g, "set": name, "n": int(x.shape[0]),
                             **{f"js_{k}mer": M.kmer_js(x, ref, k) for k in args.k}})
                print(table(rows[-1:], list(rows[-1])), flush=True)
    write_json("js_same_n", {"seed": args.seed, "rows": rows})
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
