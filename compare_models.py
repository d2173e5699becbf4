#!/usr/bin/env python
"""Compare generated sets (or checkpoints) on one held-out reference, with the Markov baseline.

    python compare_models.py --data data/example_genome.fasta --generated a.fasta b.fasta [--labels A B]
    python compare_models.py --data data/example_genome.fasta --checkpoints checkpoints/stacked_best.pt checkpoints/gumbel_best.pt
    python compare_models.py --data data/generated_sequences.fasta --seq_len 70   # the prototype's form

Writes comparison.md, comparison.csv, comparison.html and figures to --output-dir, rows sorted by
C2ST AUC, with the real-vs-real floor. With a reference genome, a markov-5 baseline trained on its
training split is included unless --no-baseline.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from main import _Parser
from utils import domains as D
from utils.errors import ConfigError


def build_parser():
    p = _Parser(prog="compare_models.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="reference genome (its held-out blocks are the reference)")
    p.add_argument("--generated", nargs="+", default=[], help="generated FASTA/text files")
    p.add_argument("--labels", nargs="+", default=None, help="names for --generated, in order")
    p.add_argument("--checkpoints", nargs="+", default=[], help="checkpoints to generate --n from")
    p.add_argument("--reference", default="data/example_genome.fasta",
                   help="reference when --data is itself a generated set (the prototype's form)")
    p.add_argument("--n", type=D.POSITIVE_INT, default=1000)
    p.add_argument("--seq_len", type=D.POSITIVE_INT, default=None)
    p.add_argument("--seed", type=D.SEED, default=0)
    p.add_argument("--no-baseline", "--no_baseline", dest="baseline", action="store_false")
    p.add_argument("--no-c2st", dest="c2st", action="store_false", help="skip the classifier test (faster)")
    p.add_argument("--motifs", default=None, metavar="GROUP",
                   help="also compare JASPAR motif hit rates (pyjaspar CORE group: all, vertebrates, plants, ...)")
    p.add_argument("--no-frechet", dest="frechet", action="store_false",
                   help="skip the Fréchet distance (its encoder trains once per reference, then is cached)")
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", default="outputs/comparison")
    return p


def run(args) -> int:
    import numpy as np

    from analysis import compare as C
    from analysis import metrics as M
    from utils.sequences import load_sequences, read_sequences

    from utils.outputs import writable_dir

    writable_dir(Path(args.output_dir))  # before any set is generated or scored
    notes = []
    generated, labels = list(args.generated), args.labels
    ref_path = args.data
    if not generated and not args.checkpoints:
        if not args.data:
            raise ConfigError("give --generated FILES, --checkpoints FILES, or --data GENERATED.fasta")
        generated, ref_path = [args.data], args.reference  # the prototype: --data is the generated set
        notes.append(f"{args.data} compared as a generated set against {args.reference}")
    if not ref_path:
        raise ConfigError("--data REFERENCE is needed with --generated/--checkpoints")
    if labels and len(labels) != len(generated):
        raise ConfigError(f"--labels has {len(labels)} names for {len(generated)} --generated files")
    labels = labels or [Path(g).stem for g in generated]
    sets = {}
    L = args.seq_len
    for name, path in zip(labels, generated):
        x = read_sequences(path, seq_len=L)
        L = L or x.shape[1]
        if x.shape[1] != L:
            raise ConfigError(f"{path}: sequences of {x.shape[1]} bp, others {L} bp; pass --seq_len to crop")
        sets[name] = x
    if args.checkpoints:
        from train.engine import load_ensemble

        for ck in args.checkpoints:
            ens, _ = load_ensemble(ck)
            L = L or ens.stats.seq_len
            sets[f"{ens.family.name} ({Path(ck).stem})"] = ens.sample(args.n, L, seed=args.seed).numpy()
    data = load_sequences(ref_path, L, val_fraction=0.2, seed=42)
    ref = data.val if data.val.shape[0] else data.train
    if not data.val.shape[0]:
        notes.append("the reference has no held-out windows; its training windows are the reference")
    if args.baseline:
        from models.registry import get_family
        from train.engine import train
        from utils.config import parse_set, resolve

        fam = get_family("markov")
        cfg = resolve("markov", fam.Config, {"data": {"path": ref_path, "seq_len": L}},
                      parse_set(["model.order=5", "train.eval_samples=100"]))
        res = train(cfg, data=data, save=False)
        n_base = max(x.shape[0] for x in sets.values())
        sets["markov-5 baseline"] = res.ensemble.sample(n_base, L, seed=args.seed).numpy()
    rows = C.rows_for(sets, ref, train=data.train, train_segments=data.train_segments, seed=args.seed, c2st=args.c2st,
                      frechet=args.frechet, motifs=args.motifs)
    rng = np.random.default_rng(args.seed)
    n_floor = min(data.train.shape[0], max(x.shape[0] for x in sets.values()))
    floor_set = data.train[rng.choice(data.train.shape[0], n_floor, replace=False)]
    floor = M.compare(floor_set, ref, ks=(2, 4, 6), c2st=args.c2st, seed=args.seed)
    floor["diversity"] = M.mean_pairwise_hamming(floor_set, seed=args.seed)
    if args.frechet and rows and "fd_floor" in rows[0]:  # training windows vs held-out, as every row's fd_floor
        floor.update({k: rows[0][f"fd_floor{s}"] for k, s in (("fd", ""), ("fd_lo", "_lo"), ("fd_hi", "_hi"))})
    C.mark_floor(rows, floor)
    C.write(rows, floor, sets, ref, args.output_dir, title=f"Model comparison on {ref_path} held-out windows ({L} bp)",
            notes=notes)
    for r in rows:
        fd = f"  FD {r['fd']:.3f}" if r.get("fd") is not None else ""
        print(f"{r['model']:<32} C2ST {C.c2st_text(r)}{fd}  4-mer JS {r['js_4mer']:.4f}  "
              f"GC {r['gc_mean']:.3f}  unique {r['unique_fraction']:.3f}  copies {r.get('exact_copies')}  "
              f"{r['vs_floor']}")
    print(f"{'real vs real (floor)':<32} C2ST {C.c2st_text(floor)}  4-mer JS {floor['js_4mer']:.4f}")
    print(f"wrote {args.output_dir}/comparison.md, comparison.csv, comparison.html")
    return 0


def main(argv=None) -> int:
    from utils import cli

    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    return cli.run(lambda a: run(build_parser().parse_args(a)), argv)


if __name__ == "__main__":
    sys.exit(main())
