"""The ablation of an adversarial gain: a run's <model>_mle.pt (the engine's snapshot before its
first adversarial epoch) resumed to the same --budget with the generator's adversarial signal
switched off and everything else as it was: the same data, discriminator updates, interleaved MLE
steps, random streams and budget clock (the checkpoint carries the seconds spent).

    python bench/quality.py --model stacked --seq_len 500 --budget 900 --pair_mle --set model.adv_weight=0.1 ...
    cp bench/results/work/ckpt/stacked_mle.pt /tmp/a/stacked_mle.pt
    python bench/ablate_adversarial.py --model stacked --seq_len 500 --mle /tmp/a/stacked_mle.pt --out /tmp/a/ablation
    python bench/quality.py --model stacked --seq_len 500 --checkpoint /tmp/a/ablation/ckpt/stacked_last.pt --tag ...

What is switched off: seqgan, the policy-gradient step (model.pg_lr 0, in the config and in the
stored optimiser and scheduler: they carry their own learning rate); stacked and gumbel,
model.adv_weight 1e-30 (0 would drop the discriminators; in float32 1e-30 times the adversarial
gradient adds nothing to the MLE term's). An adversarial row that beats its own MLE snapshot but
not this one owes its gain to the training that continued beside the adversarial term.
"""
import argparse
import logging
import shutil
from pathlib import Path

from common import ROOT

from models.registry import get_family
from train import checkpoint as ckpt_io
from train.engine import train
from utils.config import resolve
from utils.sequences import load_sequences


def switched_off(ck: dict, family: str) -> dict:
    """The checkpoint with the generator's adversarial signal off (see the module docstring)."""
    model = ck["config"]["model"]
    if family == "seqgan":
        model["pg_lr"] = 0.0
        for opts, scheds in zip(ck["optimizers"], ck["schedulers"]):
            for group in opts["pg"]["param_groups"]:
                group["lr"] = 0.0
            scheds["pg"]["base_lrs"] = [0.0] * len(scheds["pg"]["base_lrs"])
            scheds["pg"]["_last_lr"] = [0.0] * len(scheds["pg"]["_last_lr"])
    elif family in ("stacked", "gumbel"):
        if not model.get("adv_weight"):
            raise SystemExit("the run had no adversarial term (model.adv_weight 0)")
        model["adv_weight"] = 1e-30
    else:
        raise SystemExit(f"{family}: not a GAN family")
    return ck


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, choices=["stacked", "gumbel", "seqgan"])
    ap.add_argument("--mle", required=True, help="the run's <model>_mle.pt (copied out of the harness's folder)")
    ap.add_argument("--out", required=True, help="a new folder for the resumed run's checkpoints and metrics")
    ap.add_argument("--data", default=str(ROOT / "data" / "ecoli_536.fasta.gz"))
    ap.add_argument("--seq_len", type=int, default=70)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, default=900.0, help="the whole run's --budget, as the original run's")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    ck = switched_off(ckpt_io.load(args.mle), args.model)
    run_dir = out / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(ck["run_dir"]) / "metrics.csv", run_dir / "metrics.csv")  # the history up to the snapshot
    ck["run_dir"] = str(run_dir)
    ck["config"]["train"]["checkpoint_dir"] = str(out / "ckpt")
    ck["config"]["train"]["run_dir"] = str(run_dir)
    start = out / f"{args.model}_mle_ablated.pt"
    ckpt_io.save(start, ck)
    data = load_sequences(args.data, args.seq_len, val_fraction=0.2, seed=args.seed)  # quality.py's split
    fam = get_family(args.model)
    cfg = resolve(args.model, fam.Config, {"data": {"path": args.data, "seq_len": args.seq_len},
                                           "train": {"seed": args.seed, "time_budget": args.budget,
                                                     "sample_every": 0, "save_every": 0}}, {})  # as quality.py's
    res = train(cfg, resume=str(start), data=data)
    print(f"resumed from epoch {ck['epoch']} ({ck.get('elapsed_s', float('nan')):.0f} s spent) to epoch "
          f"{res.epochs_done}, {res.seconds:.0f} s in all; score {res.last_path}")


if __name__ == "__main__":
    main()
