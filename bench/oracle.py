"""Synthetic-oracle check after the SeqGAN paper: does adversarial training lower NLL-oracle?

    python bench/oracle.py [--n_train 10000] [--seq_len 20] [--set model.total_batch=200 ...]

A randomly initialised LSTM over A, C, G, T (hidden 32, every weight N(0, 1), as the paper's
target LSTM) is the true distribution. It samples 10,000 training sequences of length 20 (plus
2,000 for validation). seqgan (hidden 32, the paper's generator; configs/seqgan.yaml otherwise) is
trained on them; its generator is snapshotted at the end of MLE pretraining and after the
adversarial phase, and a second run continues plain MLE for as many epochs as the first run spent
on the discriminator and adversarial phases. Each row: NLL-oracle of 10,000 generated sequences,
-(1/N) sum_i log p_oracle(x_i) (nats per sequence; lower is better), with the oracle's own samples
(its entropy) as the floor and uniform random sequences as the ceiling.
"""
import argparse
import logging
import time

import numpy as np
import torch

from common import ROOT, table, write_json

from models.registry import get_family
from models.seqgan import Policy, SeqGANConfig
from train.engine import load_ensemble, train
from utils.config import parse_set, replace, resolve
from utils.sequences import SequenceData


def make_oracle(seed: int) -> Policy:
    torch.manual_seed(seed)
    oracle = Policy(SeqGANConfig(hidden=32, emb=32), "categorical")
    with torch.no_grad():
        for p in oracle.parameters():
            p.normal_(0.0, 1.0)
    return oracle.eval()


@torch.no_grad()
def nll_oracle(oracle: Policy, x: torch.Tensor) -> float:
    return float(-oracle.log_prob(oracle(x), x).sum(1).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n_train", type=int, default=10_000)
    ap.add_argument("--n_eval", type=int, default=10_000)
    ap.add_argument("--seq_len", type=int, default=20)
    ap.add_argument("--seed", type=int, default=88)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    oracle = make_oracle(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x = oracle.generate(args.n_train + 2000, args.seq_len, g).numpy().astype(np.uint8)
    data = SequenceData(train=x[:args.n_train], val=x[args.n_train:], train_segments=list(x[:args.n_train]),
                        source=f"oracle-lstm:{args.seed}")
    work = ROOT / "bench" / "results" / "work" / f"oracle_{time.strftime('%H%M%S')}"
    fam = get_family("seqgan")
    over = {"model": {"hidden": 32}, "train": {"seed": args.seed, "steps_per_epoch": 0, "sample_every": 0}}
    cfg = resolve("seqgan", fam.Config, over, parse_set(args.set))
    c = cfg.model
    pre = c.pre_epochs
    adv_epochs = fam.plan(cfg).epochs - pre
    runs = {}
    t = time.time()
    cfg_a = replace(cfg, train={"save_every": pre, "checkpoint_dir": str(work / "adv_ckpt"), "run_dir": str(work / "adv")})
    res_a = train(cfg_a, data=data, overwrite=True)
    runs["seqgan adversarial"] = (res_a.ensemble, time.time() - t, res_a.epochs_done)
    runs["MLE pretraining only"] = (load_ensemble(work / "adv_ckpt" / f"seqgan_epoch{pre}.pt", device="cpu")[0],
                                    next(r["elapsed_s"] for r in res_a.history if r["epoch"] == pre), pre)
    t = time.time()
    cfg_m = replace(cfg, model={"skip_adversarial": True, "skip_dis_pretrain": True, "pre_epochs": pre + adv_epochs},
                    train={"checkpoint_dir": str(work / "mle_ckpt"), "run_dir": str(work / "mle"), "save_every": 0})
    res_m = train(cfg_m, data=data, overwrite=True)
    runs[f"MLE continued ({pre + adv_epochs} epochs)"] = (res_m.ensemble, time.time() - t, res_m.epochs_done)
    rows = [{"set": "oracle samples (entropy)", "nll_oracle": nll_oracle(oracle, oracle.generate(
        args.n_eval, args.seq_len, torch.Generator().manual_seed(args.seed + 5)))},
            {"set": "uniform random", "nll_oracle": nll_oracle(oracle, torch.randint(
                0, 4, (args.n_eval, args.seq_len), generator=torch.Generator().manual_seed(1)))}]
    for name in ("MLE pretraining only", f"MLE continued ({pre + adv_epochs} epochs)", "seqgan adversarial"):
        ens, secs, ep = runs[name]
        gen = ens.sample(args.n_eval, args.seq_len, seed=args.seed + 7)
        rows.append({"set": name, "nll_oracle": nll_oracle(oracle, gen), "epochs": ep, "train_s": secs})
    for r in rows:
        r["nll_per_base"] = r["nll_oracle"] / args.seq_len
    print(f"oracle LSTM (hidden 32, N(0,1) weights, seed {args.seed}); {args.n_train} training sequences of "
          f"length {args.seq_len}; NLL-oracle of {args.n_eval} samples (nats per sequence)")
    print(table(rows, ["set", "nll_oracle", "nll_per_base", "epochs", "train_s"]))
    mle, adv = rows[2]["nll_oracle"], rows[4]["nll_oracle"]
    print(f"adversarial vs MLE pretraining: {adv - mle:+.3f} nats per sequence "
          f"({'lower: the paper reproduces' if adv < mle else 'not lower'}); vs continued MLE "
          f"{adv - rows[3]['nll_oracle']:+.3f}")
    out = write_json("oracle" + (f"_{args.tag}" if args.tag else ""), {"seed": args.seed,
        "command": "python bench/oracle.py " + " ".join(f"--set {s}" for s in args.set), "rows": rows,
        "adversarial_lower_than_mle": adv < mle})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
