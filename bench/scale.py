"""Scale: genome-sized input (read, encode, window, split; the cached second start).

    python bench/scale.py [--mb 200] [--seq_len 70]

Builds a FASTA of --mb megabases from the shipped E. coli 536 genome (copies with 1% of bases
mutated, 60-column lines, one record per copy) under bench/results/work/scale/, then, each in its
own process so memory is measured alone:
- cold: load_sequences with the data cache off: read + encode + window + split (MB/s of the file);
- first: the same with the cache on (it also writes the cache entry);
- cached: a second run, which maps the cached windows;
with the peak resident memory of each process beside the encoded windows' size (peak_over_windows:
the peak above the process's size after its imports, over the windows' bytes). The sha256 of
the file is part of every run but "cold" (which does not need it).

Training throughput for 1, 2 and 4 processes (torchrun) and the GPU rows of issue 16 are not
measured by this script yet.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import time

import numpy as np

from common import ROOT, table, write_json

WORK = ROOT / "bench" / "results" / "work" / "scale"

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
t = time.perf_counter()
from utils.sequences import load_sequences
t_import = time.perf_counter() - t
rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
d = load_sequences({path!r}, {seq_len}, seed=42)
secs = time.perf_counter() - t
n = int(d.train.sum(dtype="int64") % 7)  # touch every training window (a mapped file is read here)
touch = time.perf_counter() - t - secs
print(json.dumps({{"seconds": secs, "touch_s": touch, "import_s": t_import,
                  "train_windows": int(d.train.shape[0]), "val_windows": int(d.val.shape[0]),
                  "windows_bytes": int(d.train.nbytes + d.val.nbytes),
                  "rss_after_import_mb": rss_import,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def build(mb: int) -> tuple:
    path = WORK / f"genome_{mb}mb.fasta"
    if path.exists():
        return path, path.stat().st_size
    WORK.mkdir(parents=True, exist_ok=True)
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    with gzip.open(ROOT / "data" / "ecoli_536.fasta.gz", "rt") as fh:
        seq = next(SimpleFastaParser(fh))[1].upper()
    base = np.frombuffer(seq.encode(), np.uint8)
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"ACGT", np.uint8)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        i, total = 0, 0
        while total < mb * 1_000_000:
            copy = base.copy()
            hit = rng.random(copy.size) < 0.01
            copy[hit] = letters[rng.integers(0, 4, int(hit.sum()))]
            copy = copy[: mb * 1_000_000 - total]
            out.write(f">copy{i} E. coli 536 with 1% of bases mutated\n".encode())
            for j in range(0, copy.size, 60):
                out.write(copy[j : j + 60].tobytes() + b"\n")
            total += copy.size
            i += 1
    os.replace(tmp, path)
    return path, path.stat().st_size


def child(path, seq_len: int, cache: bool, cache_dir) -> dict:
    env = {**os.environ, "DNAGAN_CACHE": str(cache_dir), "DNAGAN_DATA_CACHE": "1" if cache else "0",
           "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), path=str(path), seq_len=seq_len)],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--seq_len", type=int, default=70)
    args = ap.parse_args()
    path, size = build(args.mb)
    cache_dir = WORK / "cache"
    import shutil

    shutil.rmtree(cache_dir, ignore_errors=True)
    rows = []
    for name, cache in (("cold (no cache)", False), ("first (writes the cache)", True), ("cached (second run)", True)):
        r = child(path, args.seq_len, cache, cache_dir)
        rows.append({"run": name, "seconds": r["seconds"], "MB_per_s": size / 1e6 / r["seconds"],
                     "touch_s": r["touch_s"], "peak_rss_mb": r["peak_rss_mb"],
                     "windows_mb": r["windows_bytes"] / 1e6,
                     "peak_over_windows": (r["peak_rss_mb"] - r["rss_after_import_mb"]) * 1.048576
                     / (r["windows_bytes"] / 1e6), "rss_after_import_mb": r["rss_after_import_mb"],
                     "train_windows": r["train_windows"], "import_s": r["import_s"]})
    cols = ["run", "seconds", "MB_per_s", "touch_s", "peak_rss_mb", "rss_after_import_mb", "windows_mb",
            "peak_over_windows",
            "train_windows", "import_s"]
    print(f"{path.name}: {size / 1e6:.1f} MB, seq_len {args.seq_len}, cores {os.cpu_count()}")
    print(table(rows, cols))
    out = write_json("scale_read", {"seed": 42, "file_mb": size / 1e6, "seq_len": args.seq_len, "rows": rows,
                                    "command": f"python bench/scale.py --mb {args.mb} --seq_len {args.seq_len}"})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
