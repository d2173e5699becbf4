"""What the stacked family's closing fit (the n-gram refit) does to the samples of one checkpoint.

    python bench/refit_effect.py --checkpoint bench/results/work/ckpt/stacked_last.pt --n 20000

Generates --n sequences from the checkpoint as saved (refit applied, when it was kept) and from the
same weights with the refit undone (the trained table), with the same seed, and scores both with
analysis.metrics.compare against the held-out blocks of the checkpoint's own data split.
"""
import argparse
import copy
import logging

from common import table, write_json

from analysis import metrics as M
from train.engine import load_ensemble
from utils.sequences import load_sequences

COLS = ["set", "js_4mer", "js_6mer", "gc_abs_diff", "unique_fraction", "c2st_auc"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    ens, ck = load_ensemble(args.checkpoint, device="cpu")
    closing = ens.family.closing_fit(ens.cfg)
    if closing is None:
        raise SystemExit(f"{args.checkpoint}: a {ens.family.name} checkpoint without a closing fit")
    d, seed = ens.cfg.data, ens.cfg.train.seed
    data = load_sequences(d.path, d.seq_len, stride=d.stride, val_fraction=d.val_fraction, block_size=d.block_size,
                          max_sequences=d.max_sequences, seed=seed, crop=d.crop_records)
    trained = copy.deepcopy(ens)
    for nets in trained.members:
        closing.undo(nets)
    rows = []
    for name, e in (("trained table (refit undone)", trained), ("as saved (refit applied)", ens)):
        gen = e.sample(args.n, d.seq_len, seed=args.seed).numpy()
        rows.append({"set": name, **M.compare(gen, data.val, train_segments=data.train_segments, ks=(4, 6),
                                              c2st=True, seed=args.seed)})
    print(table(rows, COLS))
    out = write_json("refit_effect", {"seed": args.seed, "checkpoint": args.checkpoint, "n": args.n,
                                      "refit_kept": bool(ens.members[0]["G"].ngram.refit.abs().sum() > 0),
                                      "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
