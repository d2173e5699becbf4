"""Continuous SeqGAN quality: generated vs held-out real-valued sequences, against a Gaussian AR(1).

    python bench/signal_quality.py [--data data/example_signals.txt] [--set model.total_batch=200 ...]

Trains seqgan (configs/seqgan.yaml: the prototype's settings) on the training lines of the file,
snapshotting the generator at the end of MLE pretraining, and scores with analysis.distributions
(the metric code of analyse_distributions.py) against the held-out lines:
rows = real training lines (the floor), Gaussian AR(1) fit on the training lines, seqgan after MLE
pretraining only, seqgan after the adversarial phase. Lower KS / Wasserstein / JS / acf_mae is better.
"""
import argparse
import logging
import time

import numpy as np

from common import ROOT, table, write_json

from analysis import distributions as DS
from models.registry import get_family
from train.engine import load_ensemble, train
from utils.config import parse_set, resolve
from utils.sequences import load_signals

COLS = ["set", "ks_statistic", "wasserstein", "js_histogram", "acf_mae", "acf1_gen", "std_gen",
        "mean_pairwise_distance_gen", "unique_fraction_gen", "train_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT / "data/example_signals.txt"))
    ap.add_argument("--n", type=int, default=0, help="generated sequences per row (0 = as many as held-out)")
    ap.add_argument("--seed", type=int, default=88)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    data = load_signals(args.data, val_fraction=0.2)
    val, n = data.val, args.n or data.val.shape[0]
    L = data.seq_len
    print(f"{args.data}: {data.train.shape[0]} training and {val.shape[0]} held-out sequences of length {L}")
    work = ROOT / "bench" / "results" / "work" / f"signals_{time.strftime('%H%M%S')}"
    fam = get_family("seqgan")
    cfg = resolve("seqgan", fam.Config, {"data": {"path": args.data},
                                        "train": {"seed": args.seed, "checkpoint_dir": str(work / "ckpt"),
                                                  "run_dir": str(work / "run"), "sample_every": 0}},
                  parse_set(args.set))
    pre = cfg.model.pre_epochs if not cfg.model.skip_gen_pretrain else 0
    from utils.config import replace

    cfg = replace(cfg, train={"save_every": pre} if pre else {})
    res = train(cfg, data=data, overwrite=True)  # a rerun replaces its own earlier checkpoints
    rng = np.random.default_rng(args.seed)
    sets = {"real (training lines)": (data.train[rng.choice(data.train.shape[0], min(n, data.train.shape[0]), replace=False)], 0.0),
            "Gaussian AR(1) fit on training lines": (DS.sample_ar1(DS.fit_ar1(data.train), n, L, seed=args.seed), 0.0)}
    snap = work / "ckpt" / f"seqgan_epoch{pre}.pt"
    if pre and snap.exists():
        ens, _ = load_ensemble(snap, device="cpu")
        sets["seqgan MLE pretraining only"] = (ens.sample(n, L, seed=args.seed + 1).numpy(),
                                               next(r["elapsed_s"] for r in res.history if r["epoch"] == pre))
    sets["seqgan " + ("adversarial" if "pg_loss" in res.history[-1] else "final")] = (
        res.ensemble.sample(n, L, seed=args.seed + 1).numpy(), res.seconds)
    rows = []
    for name, (x, secs) in sets.items():
        rows.append({"set": name, **DS.compare(x, val, seed=args.seed), "train_s": secs})
    print(table(rows, COLS))
    print(f"held-out: lag-1 autocorrelation {rows[0]['acf1_real']:.3f}, std {rows[0]['std_real']:.3f}")
    out = write_json("signal_quality" + (f"_{args.tag}" if args.tag else ""), {"seed": args.seed,
        "command": "python bench/signal_quality.py " + " ".join(f"--set {s}" for s in args.set),
        "rows": rows, "epochs_done": res.epochs_done})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
