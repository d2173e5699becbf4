"""Build data/example_signals.txt: real-valued sequences with real-world structure for SeqGAN's
continuous path.

    python bench/make_signals.py [--data data/ecoli_536.fasta.gz] [--bin 100] [--per_line 20]

The GC fraction of consecutive --bin bp bins along each record of the genome (E. coli 536 by
default), standardised by the genome-wide mean and standard deviation of the bins, written
--per_line bins per line (each line is 2 kb of consecutive genome; a partial last line is dropped).
Bins come from the ACGT letters only; a line whose bins hold any N is skipped.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from utils.sequences import atomic_write_text, read_records  # noqa: E402


def gc_bins(seq: str, size: int) -> np.ndarray:
    """GC fraction of consecutive bins (NaN where a bin holds anything but A, C, G, T)."""
    b = np.frombuffer(seq.upper().encode("ascii", "replace"), np.uint8)
    n = b.size // size
    b = b[: n * size].reshape(n, size)
    gc = ((b == ord("G")) | (b == ord("C"))).sum(1)
    acgt = gc + ((b == ord("A")) | (b == ord("T"))).sum(1)
    out = gc / size
    out[acgt < size] = np.nan
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT / "data/ecoli_536.fasta.gz"))
    ap.add_argument("--bin", type=int, default=100)
    ap.add_argument("--per_line", type=int, default=20)
    ap.add_argument("--output", default=str(ROOT / "data/example_signals.txt"))
    args = ap.parse_args()
    lines = []
    for rid, seq in read_records(args.data):
        g = gc_bins(seq, args.bin)
        n = g.size // args.per_line
        lines.append(g[: n * args.per_line].reshape(n, args.per_line))
    x = np.concatenate(lines)
    x = x[~np.isnan(x).any(1)]
    mu, sd = float(x.mean()), float(x.std())
    z = (x - mu) / sd
    atomic_write_text(args.output, "".join(" ".join(f"{v:.4f}" for v in row) + "\n" for row in z))
    print(f"{args.output}: {z.shape[0]} lines x {z.shape[1]} values; GC per {args.bin} bp bin: "
          f"mean {mu:.4f}, sd {sd:.4f} (standardised by these); lag-1 autocorrelation "
          f"{np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1]:.3f}")


if __name__ == "__main__":
    main()
