"""Scale: genome-sized input (read, encode, window, split; the cached second start), and training
throughput for 1, 2 and 4 processes under torchrun (or on a GPU).

    python bench/scale.py --part read [--mb 200] [--seq_len 70]
    python bench/scale.py --part train [--procs 1 2 4] [--families ...] [--seq_len 70] [--batch 64]
    python bench/scale.py --part train --device cuda --amp bf16 --procs 1 --batch 256 --seq_len 500 --tag gpu
    python bench/scale.py --part start [--mb 200]

Builds a FASTA of --mb megabases from the shipped E. coli 536 genome (copies with 1% of bases
mutated, 60-column lines, one record per copy) under bench/results/work/scale/, then, each in its
own process so memory is measured alone:
- cold: load_sequences with the data cache off: read + encode + window + split (MB/s of the file);
- first: the same with the cache on (it also writes the cache entry);
- cached: a second run, which maps the cached windows;
with the peak resident memory of each process beside the encoded windows' size (peak_over_windows:
the peak above the process's size after its imports, over the windows' bytes). The sha256 of
the file is part of every run but "cold" (which does not need it).

--part train runs each family through the CLI as a user would (`python main.py --mode train` for
one process, `torchrun --standalone --nproc_per_node=N main.py --mode train` for N), on E. coli 536
windows, for a fixed number of epochs of a fixed number of steps, each process with
OMP_NUM_THREADS = max(1, cores // N) so processes do not fight over cores. Every rank takes --batch
windows per step (the global batch is N x --batch: weak scaling). The figure is the median of the
epochs' training sequences/s after the first (metrics.csv seqs_per_s: every rank's windows over the
epoch's training time, monitoring excluded), with the speed-up over one process, the peak memory
(rank 0's: resident on a CPU, allocated on a GPU) and, with --gen, generation sequences/s from the
checkpoint in one process. GAN families run their adversarial steps from step 0 (warm-up off) so
the mix of steps is the trained one; seqgan is measured in MLE pretraining and in adversarial rounds
(Monte-Carlo rollouts) separately; closing fits are off (they are not training steps).
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import time

import shutil
import statistics

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


# Per family: the settings that make its measured steps its trained steps (see the docstring), and
# steps per epoch (an epoch of one process on 2 CPU cores takes roughly 5-20 s).
TRAIN = {
    "stacked": (["--set", "model.ngram_refit=0"], 15),
    "gumbel": (["--set", "model.warmup_steps=0", "--set", "model.ngram_refit=0"], 30),
    "seqgan-mle": (["--set", "model.pre_epochs=4", "--set", "model.dis_pre_epochs=0", "--set", "model.total_batch=0",
                    "--set", "model.ngram_refit=0"], 40),
    "seqgan-adv": (["--set", "model.pre_epochs=0", "--set", "model.dis_pre_epochs=0", "--set", "model.total_batch=8",
                    "--set", "model.rounds_per_epoch=2", "--set", "model.ngram_refit=0"], 2),
    "masked": ([], 30),
    "markov": ([], 20),
}


def cores_used(args) -> int:
    """The cores a --part train run may use: --cores (pinned with taskset where present), else all."""
    return min(args.cores, os.cpu_count() or 1) if args.cores else (os.cpu_count() or 1)


def train_row(family: str, procs: int, args) -> dict:
    sets, steps = TRAIN[family]
    name = family.split("-")[0]
    work = WORK / "train" / f"{family}_{procs}{'_' + args.tag if args.tag else ''}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cores = cores_used(args)
    # ROOT before whatever PYTHONPATH already holds (the GPU machine's carried wheels: bench/gpu_checks.sh)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // procs)),
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    main_py = str(ROOT / "main.py")
    launch = ([sys.executable, main_py] if procs == 1 else
              [str(shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")),
               "--standalone", f"--nproc_per_node={procs}", main_py])
    if args.cores and shutil.which("taskset"):  # every process of the run on the first --cores cores
        launch = ["taskset", "-c", f"0-{cores - 1}"] + launch
    cmd = launch + ["--mode", "train", "--model", name, "--data", str(args.data), "--seq_len", str(args.seq_len),
                    *(["--batch", str(args.batch)] if args.batch else []), "--device", args.device, "--amp", args.amp,
                    "--run_dir", str(work / "run"), "--checkpoint_dir", str(work / "ck"),
                    "--set", f"train.steps_per_epoch={steps * args.steps_scale}", "--set", "train.eval_samples=64",
                    "--set", "train.sample_every=0", "--set", "train.save_every=0", *sets]
    if family != "seqgan-adv" and not any(c.startswith("model.pre_epochs") for c in sets):
        cmd += ["--epochs", str(args.epochs)]
    if args.curriculum:
        cmd += ["--curriculum"]
    if args.compile != "off":
        cmd += ["--compile", args.compile]
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work)
    wall = time.time() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}\n{r.stderr[-2000:]}")
    import csv

    with open(work / "run" / "metrics.csv") as fh:
        epochs = list(csv.DictReader(fh))
    rates = [float(e["seqs_per_s"]) for e in epochs[1:]] or [float(epochs[0]["seqs_per_s"])]
    import yaml

    batch = int(yaml.safe_load((work / "run" / "config.yaml").read_text())["train"]["batch"])
    row = {"family": family, "procs": procs, "omp_threads": max(1, cores // procs), "batch_per_rank": batch,
           "global_batch": batch * procs, "epochs": len(epochs), "steps_per_epoch": steps * args.steps_scale,
           "seqs_per_s": statistics.median(rates), "rates": rates, "wall_s": wall,
           "peak_memory_mb": float(epochs[-1].get("peak_memory_mb") or "nan"),
           "command": " ".join(os.path.relpath(c, ROOT) if c.startswith(str(ROOT)) else c for c in cmd)}
    if args.gen:
        ck = work / "ck" / f"{name}_last.pt"
        t = time.time()
        g = subprocess.run([sys.executable, main_py, "--mode", "gen", "--checkpoint", str(ck), "--n", str(args.gen),
                            "--device", args.device, "--output", str(work / "gen.fasta")],
                           capture_output=True, text=True, env={**env, "OMP_NUM_THREADS": str(cores)}, cwd=work)
        if g.returncode != 0:
            raise SystemExit(g.stderr[-2000:])
        row["gen_seqs_per_s_incl_start"] = args.gen / (time.time() - t)
    shutil.rmtree(work / "ck", ignore_errors=True)
    return row


def main_train(args) -> None:
    """Rows are written to the JSON as they come (a later failure keeps them); rows of families
    not in this run are kept from the JSON already there."""
    name = "scale_train" + (f"_{args.tag}" if args.tag else "")
    path = ROOT / "bench" / "results" / f"{name}.json"
    kept = [r for r in (json.loads(path.read_text())["rows"] if path.exists() else [])
            if r["family"] not in args.families]
    rows = []
    cores = cores_used(args)
    cols = ["family", "procs", "omp_threads", "batch_per_rank", "global_batch", "seqs_per_s", "speedup",
            "peak_memory_mb", "wall_s"] + (["gen_seqs_per_s_incl_start"] if args.gen else [])
    for family in args.families:
        base = None
        for n in args.procs:
            row = train_row(family, n, args)
            base = row["seqs_per_s"] if n == 1 else base
            row["speedup"] = row["seqs_per_s"] / base if base else float("nan")
            rows.append(row)
            print(f"{family} x{n}: {row['seqs_per_s']:.1f} seq/s ({row['wall_s']:.0f} s)", flush=True)
            write_json(name, {"seed": 42, "cores": cores, "machine_cores": os.cpu_count(), "device": args.device, "amp": args.amp,
                              "compile": args.compile,
                              "seq_len": args.seq_len, "rows": kept + rows,
                              "command": "python bench/scale.py " + " ".join(sys.argv[1:])})
    print(f"cores {cores}, device {args.device}, amp {args.amp}, seq_len {args.seq_len}")
    print(table(kept + rows, cols))
    print(f"wrote {path}")


def cli_start(path, family: str, cache_dir) -> dict:
    """Seconds from launching `python main.py --mode train` to its "plan:" line (logged just before
    the first step), and to its data line."""
    env = {**os.environ, "DNAGAN_CACHE": str(cache_dir), "OMP_NUM_THREADS": str(os.cpu_count() or 1)}
    work = WORK / "start"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cmd = [sys.executable, str(ROOT / "main.py"), "--mode", "train", "--model", family, "--data", str(path),
           "--epochs", "1", "--set", "train.steps_per_epoch=1", "--set", "train.eval_samples=16",
           "--set", "train.sample_every=0", "--run_dir", str(work / "run"), "--checkpoint_dir", str(work / "ck")]
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=work)
    seen = {}
    for line in p.stderr:
        now = time.perf_counter() - t
        if "training and" in line and "data_s" not in seen:
            seen["data_s"] = now
        if line.startswith("plan:"):
            seen["plan_s"] = now
    p.wait()
    if p.returncode != 0 or "plan_s" not in seen:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode})")
    return seen


def main_start(args) -> None:
    path, size = build(args.mb)
    cache_dir = WORK / "start_cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, numpy, Bio, yaml, tqdm"], check=True)
    imports = time.perf_counter() - t
    rows = []
    for name in ("first run (reads the file, writes the cache)", "second run (cached)", "third run (cached)"):
        r = cli_start(path, args.start_family, cache_dir)
        rows.append({"run": name, "to_data_s": r.get("data_s"), "to_first_step_s": r["plan_s"]})
        print(rows[-1], flush=True)
    print(f"{path.name}: {size / 1e6:.1f} MB; python + torch + numpy + Bio imports alone: {imports:.2f} s")
    print(table(rows, ["run", "to_data_s", "to_first_step_s"]))
    out = write_json("scale_start", {"seed": 42, "file_mb": size / 1e6, "imports_s": imports, "rows": rows,
                                     "family": args.start_family,
                                     "command": f"python bench/scale.py --part start --mb {args.mb}"})
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["read", "train", "start"], default="read")
    ap.add_argument("--start_family", default="markov", help="--part start: the family whose run is started")
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--seq_len", type=int, default=70)
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--families", nargs="+", default=list(TRAIN), choices=list(TRAIN))
    ap.add_argument("--batch", type=int, default=0, help="windows per rank per step (default: the family's)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--cores", type=int, default=0,
                    help="--part train: use only the first N cores (taskset; OMP_NUM_THREADS = N // procs); 0 = all")
    ap.add_argument("--steps_scale", type=int, default=1, help="multiply every family's steps per epoch")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", default="off")
    ap.add_argument("--curriculum", action="store_true")
    ap.add_argument("--compile", default="off", choices=["off", "default", "reduce-overhead", "max-autotune"],
                    help="--part train: main.py --compile (the first epoch, which compiles, is not counted)")
    ap.add_argument("--gen", type=int, default=0, help="also time generating N sequences from the checkpoint")
    ap.add_argument("--data", default=str(ROOT / "data" / "ecoli_536.fasta.gz"))
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    if args.part == "train":
        return main_train(args)
    if args.part == "start":
        return main_start(args)
    path, size = build(args.mb)
    cache_dir = WORK / "cache"
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
                                    "command": f"python bench/scale.py --part read --mb {args.mb} --seq_len {args.seq_len}"})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
