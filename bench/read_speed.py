"""Read + encode + window a whole genome (default E. coli 536, 4.9 Mb, gzipped FASTA).

    python bench/read_speed.py [--data data/ecoli_536.fasta.gz] [--seq_len 70] [--repeats 5]
Target: under 1 s on the 2-core dev machine.
"""
import argparse
import os
import time

from common import ROOT, table, write_json

from utils.sequences import load_sequences


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT / "data/ecoli_536.fasta.gz"))
    ap.add_argument("--seq_len", type=int, default=70)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        d = load_sequences(args.data, args.seq_len)
        times.append(time.perf_counter() - t)
    bases = sum(s.size for s in d.train_segments) + sum(s.size for s in d.val_segments)
    best, median = min(times), sorted(times)[len(times) // 2]
    row = {"file": os.path.basename(args.data), "bases": bases, "train_windows": d.train.shape[0],
           "val_windows": d.val.shape[0], "best_s": best, "median_s": median,
           "MB_per_s": bases / 1e6 / median}
    print(table([row], list(row)))
    print(f"wrote {write_json('read_speed', {'seed': None, 'rows': [row], 'times': times})}")


if __name__ == "__main__":
    main()
