"""Rollout reward speed: batched rollouts (models/seqgan.rollout_rewards) vs the plain loop.

    python bench/rollout_speed.py [--seq_len 40] [--rollout_num 16] [--batch 64] [--repeats 3]

The loop reference (loop_rewards, below) is how public SeqGAN code computes rewards: for each
rollout, for each prefix length, run the rollout net over the prefix from scratch, sample the rest
of the sequence, and call the discriminator on that batch. Both are timed for one generator
update's rewards (batch x seq_len x rollout_num completions) with two discriminators: ours
(configs/seqgan.yaml: nine widths x 32 filters) and a text-GAN toolkit's (widths 2-5 x 300 filters,
embedding 64), whose forwards dominate its loop. Policy: LSTM hidden 32 (the prototype's).
Columns: loop_s, the loop with D run as public code runs it (embedding, then convolution);
loop_folded_d_s, the loop with our folded D (so speedup_batching_only is what batching alone buys);
batched_s, rollout_rewards.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write_json  # noqa: E402

from models.seqgan import Discriminator, Policy, SeqGANConfig, rollout_rewards, score  # noqa: E402


def plain_score(D, x):
    """P(real) through D's reference path (embedding, then convolution), in eval mode: how public
    code runs its discriminator."""
    was = D.training
    D.eval()
    try:
        return torch.sigmoid(D.out(D.drop(D.highway(features_unfolded(D, x)))).squeeze(-1))
    finally:
        D.train(was)


@torch.no_grad()
def features_unfolded(D, x: torch.Tensor) -> torch.Tensor:
    """The reference path of D's features (embedding, then convolution), which the folded kernels
    of the library path skip; tests check the two against each other."""
    x = torch.nn.functional.one_hot(x.long(), 4).float() if D.kind == "categorical" else x.float().unsqueeze(-1)
    e = D.embed(x).transpose(1, 2)
    return torch.cat([torch.relu(conv(e)).amax(-1) for conv in D.convs], 1)


def loop_rewards(policy, D, x, rollout_num, *, generator=None, plain=True):
    """Reference: a Python loop over rollouts and prefixes; returns (B, L) rewards like rollout_rewards.
    plain=True scores through D's unfolded reference path; False through the production path."""
    B, L = x.shape
    judge = plain_score if plain else (lambda D, s: score(D, s, B))
    rewards = torch.zeros(B, L, device=x.device)
    for _ in range(rollout_num):
        for t in range(1, L):
            seq = x.clone()
            inp, state = policy.start_input(B, x.device), None
            for s in range(L):  # feed the given prefix, then sample the rest
                params, state = policy.step(inp, state)
                if s >= t:
                    seq[:, s] = policy.draw(policy.table(params, seq, s), generator).to(seq.dtype)
                inp = policy.inputs(seq[:, s : s + 1])
            rewards[:, t - 1] += judge(D, seq)
        rewards[:, L - 1] += judge(D, x)
    return rewards / rollout_num


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seq_len", type=int, default=40)
    ap.add_argument("--rollout_num", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    discs = {"ours (9 widths x 32)": SeqGANConfig(hidden=args.hidden),
             "text-GAN toolkit's (4 widths x 300, emb 64)": SeqGANConfig(
                 hidden=args.hidden, d_emb=64, d_filter_sizes=(2, 3, 4, 5), d_num_filters=(300, 300, 300, 300))}
    rows = []
    for name, c in discs.items():
        G = Policy(c, "categorical")
        D = Discriminator(c, "categorical", args.seq_len)
        x = G.generate(args.batch, args.seq_len, torch.Generator().manual_seed(1))
        fns = {"batched": rollout_rewards, "loop": loop_rewards,
               "loop_folded_d": lambda *a, **k: loop_rewards(*a, plain=False, **k)}
        times = {k: [] for k in fns}
        for _ in range(args.repeats):
            for kind, fn in fns.items():
                g = torch.Generator().manual_seed(2)
                t = time.perf_counter()
                r = fn(G, D, x, args.rollout_num, generator=g)
                times[kind].append(time.perf_counter() - t)
                assert r.shape == (args.batch, args.seq_len)
        med = {k: float(np.median(v)) for k, v in times.items()}
        rows.append({"discriminator": name, "loop_s": med["loop"], "loop_folded_d_s": med["loop_folded_d"],
                     "batched_s": med["batched"], "speedup": med["loop"] / med["batched"],
                     "speedup_batching_only": med["loop_folded_d"] / med["batched"],
                     "completions": args.batch * (args.seq_len - 1) * args.rollout_num})
    cols = ["discriminator", "loop_s", "loop_folded_d_s", "batched_s", "speedup", "speedup_batching_only",
            "completions"]
    print(f"rewards for one generator update: batch {args.batch}, length {args.seq_len}, "
          f"{args.rollout_num} rollouts, LSTM hidden {args.hidden}, {args.threads} threads, median of {args.repeats}")
    print(table(rows, cols))
    out = write_json("rollout_speed", {"seed": 0, "command": "python bench/rollout_speed.py " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items()), "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
