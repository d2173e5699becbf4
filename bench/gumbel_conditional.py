"""GC-conditional Gumbel GAN on E. coli 536: asked GC against obtained GC, per GC bin.

    python bench/gumbel_conditional.py --budget 300

Trains `--model gumbel --condition gc` (quantile bins of training-window GC), then asks for each
bin's mean training GC (and for a few round values) and reports the mean and spread of the GC
of 2,000 generated sequences per request, beside the training windows of that bin.
"""
import argparse
import logging
import time

import numpy as np

from common import ROOT, table, write_json

from analysis import metrics as M
from models.registry import get_family
from train.engine import train
from utils.config import parse_set, resolve
from utils.sequences import load_sequences


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=300)
    ap.add_argument("--data", default=str(ROOT / "data/ecoli_536.fasta.gz"))
    ap.add_argument("--seq_len", type=int, default=70)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    data = load_sequences(args.data, args.seq_len, val_fraction=0.2, seed=args.seed)
    fam = get_family("gumbel")
    work = ROOT / "bench" / "results" / "work"
    over = {"data": {"path": args.data, "seq_len": args.seq_len},
            "train": {"seed": args.seed, "time_budget": args.budget, "checkpoint_dir": str(work / "gumbel_cond"),
                      "run_dir": str(work / f"run_gumbel_cond_{time.strftime('%H%M%S')}"),
                      "sample_every": 0, "save_every": 0},
            "model": {"condition": "gc"}}
    cfg = resolve("gumbel", fam.Config, over, parse_set(args.set))
    res = train(cfg, data=data, overwrite=True)  # a rerun replaces its own earlier checkpoints
    ens = res.ensemble
    edges = ens.members[0]["classes"].edges.cpu().numpy()
    gc_train = M.gc_content(data.train)
    labels = np.searchsorted(edges, gc_train, side="right")
    rows = []
    for b in range(len(edges) + 1):
        sel = gc_train[labels == b]
        lo = 0.0 if b == 0 else float(edges[b - 1])
        hi = 1.0 if b == len(edges) else float(edges[b])
        ask = float(sel.mean())
        got = M.gc_content(ens.sample(args.n, seed=args.seed + b, gc=ask).numpy())
        rows.append({"bin": b, "range": f"[{lo:.3f}, {hi:.3f})", "asked_gc": ask, "train_std": float(sel.std()),
                     "obtained_gc": float(got.mean()), "obtained_std": float(got.std()),
                     "abs_diff": abs(float(got.mean()) - ask),
                     "in_bin": float(((got >= lo) & (got < hi)).mean())})
    print(table(rows, ["bin", "range", "asked_gc", "obtained_gc", "abs_diff", "train_std", "obtained_std", "in_bin"]))
    uncond = M.gc_content(ens.sample(args.n, seed=args.seed + 99).numpy())
    print(f"unconditional draw (labels sampled uniformly): GC {uncond.mean():.4f} +- {uncond.std():.4f}; "
          f"training windows {gc_train.mean():.4f} +- {gc_train.std():.4f}")
    out = write_json("gumbel_conditional", {"seed": args.seed,
        "command": f"python bench/gumbel_conditional.py --budget {args.budget:g}" + "".join(f" --set {s}" for s in args.set),
        "rows": rows, "epochs_done": res.epochs_done, "train_s": res.seconds,
        "unconditional_gc": float(uncond.mean()), "train_gc": float(gc_train.mean())})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
