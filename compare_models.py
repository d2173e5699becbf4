#!/usr/bin/env python
"""Compare generated sets (or checkpoints) on one held-out reference, with the Markov baseline.

    python compare_models.py --data data/example_genome.fasta --generated a.fasta b.fasta [--labels A B]
    python compare_models.py --data data/example_genome.fasta --checkpoints checkpoints/stacked_best.pt checkpoints/gumbel_best.pt
    python compare_models.py --data data/generated_sequences.fasta --seq_len 70   # the prototype's form
    python compare_models.py --data data/labelled_example.fasta --checkpoints ck/stacked_best.pt ck/masked_best.pt

Writes comparison.md, comparison.csv, comparison.html and figures to --output-dir, rows sorted by
C2ST AUC, with the real-vs-real floor. With a reference genome, a markov-5 baseline trained on its
training split is included unless --no-baseline, with --phased_baseline the phased Markov
mixture too (codon-phased chains fitted by EM, models/markov.py: the stronger baseline on bacterial
DNA), and with --hmm_baseline the phased HMM (its state may switch at any base: the strongest at
500 bp and longer). When the reference has labels (label= headers or
--label_pattern) the rows of labelled sets (generated files whose headers carry label=, checkpoints
trained on labels: --n of each label) also get conditional_accuracy against its ceiling and chance
(analysis.fidelity, one classifier for every row).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from main import _Parser, add_ref_stride
from utils import domains as D
from utils.errors import ConfigError


def build_parser():
    p = _Parser(prog="compare_models.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="reference genome (its held-out blocks are the reference)")
    p.add_argument("--generated", nargs="+", default=[], help="generated FASTA/text files")
    p.add_argument("--select_apart", action="store_true",
                   help="the models trained with --select_apart: judge only the held-out blocks that did not pick them")
    p.add_argument("--labels", nargs="+", default=None, help="names for --generated, in order")
    p.add_argument("--checkpoints", nargs="+", default=[], help="checkpoints to generate --n from")
    p.add_argument("--reference", default="data/example_genome.fasta",
                   help="reference when --data is itself a generated set (the prototype's form)")
    p.add_argument("--n", type=D.POSITIVE_INT, default=1000)
    p.add_argument("--seq_len", type=D.POSITIVE_INT, default=None)
    p.add_argument("--seed", type=D.SEED, default=0)
    p.add_argument("--device", default="auto",
                   help="auto | cpu | cuda: where --checkpoints generate and the C2ST judges train (auto: a GPU if any)")
    add_ref_stride(p)
    p.add_argument("--no-baseline", "--no_baseline", dest="baseline", action="store_false")
    p.add_argument("--phased_baseline", "--phased-baseline", action="store_true",
                   help="also the phased Markov mixture (--model markov --set model.period=3 --set model.components=7), "
                        "trained on the reference's training split")
    p.add_argument("--hmm_baseline", "--hmm-baseline", action="store_true",
                   help="also the phased HMM (the phased mixture with --set model.hmm=true: Baum-Welch, about a "
                        "minute at 500 bp on E. coli), trained on the reference's training split")
    p.add_argument("--no-c2st", dest="c2st", action="store_false", help="skip the classifier test (faster)")
    p.add_argument("--motifs", default=None, metavar="GROUP",
                   help="also compare JASPAR motif hit rates (pyjaspar CORE group: all, vertebrates, plants, ...)")
    p.add_argument("--no-frechet", dest="frechet", action="store_false",
                   help="skip the Fréchet distance (its encoder trains once per reference, then is cached)")
    p.add_argument("--label_pattern", default=None, metavar="REGEX",
                   help="the reference's labels: the first group of this regex over each header (default: label=NAME)")
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", default="outputs/comparison")
    return p


def run(args) -> int:
    from analysis import compare as C
    from analysis.judge import reference_labels, reference_windows
    from train.engine import resolve_device
    from utils.outputs import writable_dir
    from utils.sequences import load_sequences

    judge_device = resolve_device(args.device)  # a --device that is not here fails before any work
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
    from utils.labels import LabelSource

    sets, asked, L, apart = _read_sets(args, labels, generated)
    if apart and not args.select_apart:
        notes.append(f"{', '.join(apart)} trained with --select_apart, but every held-out block is the reference here "
                     "(pass --select_apart to judge only the blocks that did not pick best.pt)")
    source = LabelSource(pattern=args.label_pattern) if args.label_pattern else None
    data = load_sequences(ref_path, L, val_fraction=0.2, seed=42, labels=source, select_apart=args.select_apart)
    ref, ref_groups, what = reference_windows(data, args.ref_stride)
    if not data.val.shape[0]:
        notes.append("the reference has no held-out windows; its training windows are the reference")
    _add_baselines(args, data, L, sets, asked)
    # the floor: as many training windows as the largest set; every row and the floor judged at one size
    # (the judge's power grows with its sample: docs/benchmarks.md, "Phage T4"), as bench/genomes.py
    n_floor = min(data.train.shape[0], max(x.shape[0] for x in sets.values()))
    judge_n = min(n_floor, ref.shape[0], *(x.shape[0] for x in sets.values()))
    rows = C.rows_for(sets, ref, train=data.train, train_segments=data.train_segments, seed=args.seed, c2st=args.c2st,
                      frechet=args.frechet, motifs=args.motifs, c2st_n=judge_n, ref_groups=ref_groups,
                      judge_device=judge_device)
    if data.label_names and asked:
        # the classifier trains on the training blocks' windows every L / 5 bases (as --mode analyze)
        dense = load_sequences(ref_path, L, val_fraction=0.2, seed=42, labels=source, stride=max(1, L // 5),
                               select_apart=args.select_apart)
        _add_fidelity(rows, sets, asked, data, dense, args.seed, (ref, reference_labels(data, args.ref_stride)))
    elif asked:
        notes.append("labelled sets, but the reference has no labels (label= headers or --label_pattern): "
                     "no conditional accuracy")
    floor = _floor(args, data.train, ref, ref_groups, rows, n_floor, judge_n, judge_device)
    C.mark_floor(rows, floor)
    if power := C.judge_power_note(rows, floor):
        notes.append(power)
    half = ", their judged half" if args.select_apart else ""
    judged_on = f"; C2ST judges on {judge_device.type}" if args.c2st else ""
    C.write(rows, floor, sets, ref, args.output_dir,
            title=f"Model comparison on {ref_path} ({what}{half}; {L} bp{judged_on})", notes=notes)
    for r in rows:
        fd = f"  FD {r['fd']:.3f}" if r.get("fd") is not None else ""
        print(f"{r['model']:<32} C2ST {C.c2st_text(r)}{fd}  4-mer JS {r['js_4mer']:.4f}  "
              f"GC {r['gc_mean']:.3f}  unique {r['unique_fraction']:.3f}  copies {r.get('exact_copies')}  "
              f"{r['vs_floor']}" + (f"  conditional {r['conditional_accuracy']:.3f} (ceiling "
                                    f"{r['conditional_ceiling']:.3f})" if "conditional_accuracy" in r else ""))
    print(f"{'real vs real (floor)':<32} C2ST {C.c2st_text(floor)}  4-mer JS {floor['js_4mer']:.4f}")
    for n in notes:
        print(f"note: {n}")
    print(f"wrote {args.output_dir}/comparison.md, comparison.csv, comparison.html")
    return 0


def _floor(args, train, ref, ref_groups, rows: list, n: int, judge_n: int, judge_device=None) -> dict:
    """The real-vs-real floor's row: n training windows against the reference, judged at judge_n a
    side as every row; its Fréchet distance is the rows' fd_floor (training windows vs held-out)."""
    import numpy as np

    from analysis import metrics as M

    rng = np.random.default_rng(args.seed)
    floor_set = train[rng.choice(train.shape[0], n, replace=False)]
    floor = M.compare(floor_set, ref, ks=(2, 4, 6), c2st=args.c2st, seed=args.seed, c2st_n=judge_n,
                      ref_groups=ref_groups, judge_device=judge_device)
    floor["diversity"] = M.mean_pairwise_hamming(floor_set, seed=args.seed)
    if args.frechet and rows and "fd_floor" in rows[0]:
        floor.update({k: rows[0][f"fd_floor{s}"] for k, s in (("fd", ""), ("fd_lo", "_lo"), ("fd_hi", "_hi"))})
    return floor


def _add_baselines(args, data, L: int, sets: dict, asked: dict) -> None:
    """The markov-5 baseline (unless --no-baseline) and, with --phased_baseline and --hmm_baseline, the
    phased Markov mixture and the phased HMM, each trained on the reference's training split and added
    to ``sets`` with as many sequences as the largest set (labelled references: as many of each label,
    in ``asked``)."""
    from train.baselines import fit_baseline

    wanted = {"markov-5 baseline": args.baseline, "markov phased baseline": args.phased_baseline,
              "markov phased HMM baseline": args.hmm_baseline}
    n_base = max(x.shape[0] for x in sets.values())
    for name in (name for name, on in wanted.items() if on):
        ens = fit_baseline(data, name)
        if data.label_names:  # per-label chains: as many of each label as a labelled set has
            sets[name], asked[name] = _checkpoint_set(ens, max(1, n_base // len(data.label_names)), L, args.seed)
        else:
            sets[name] = ens.sample(n_base, L, seed=args.seed).numpy()


def _read_sets(args, names, generated):
    """(sets, asked, L, apart): every --generated file and --checkpoints sample as codes of one length L,
    for labelled sets the label each row was generated for (headers; --n of each label), and the
    names of the checkpoints trained with data.select_apart."""
    from utils.labels import generated_labels
    from utils.sequences import read_sequences

    sets, asked, apart = {}, {}, []
    L = args.seq_len
    for name, path in zip(names, generated):
        x = read_sequences(path, seq_len=L)
        L = L or x.shape[1]
        if x.shape[1] != L:
            raise ConfigError(f"{path}: sequences of {x.shape[1]} bp, others {L} bp; pass --seq_len to crop")
        sets[name] = x
        if (lab := generated_labels(path)) is not None:
            asked[name] = lab
    if args.checkpoints:
        from train.engine import load_ensemble

        for ck in args.checkpoints:
            ens, meta = load_ensemble(ck, device=args.device)
            L = L or ens.stats.seq_len
            name = f"{ens.family.name} ({Path(ck).stem})"
            if meta["config"].get("data", {}).get("select_apart"):
                apart.append(name)
            sets[name], lab = _checkpoint_set(ens, args.n, L, args.seed)
            if lab is not None:
                asked[name] = lab
    return sets, asked, L, apart


def _checkpoint_set(ens, n: int, L: int, seed: int):
    """(codes, asked labels or None): a model trained on labels gives n of each label."""
    import numpy as np

    names = ens.stats.label_names if ens.family.labelled else ()
    if not names:
        return ens.sample(n, L, seed=seed).numpy(), None
    codes = np.concatenate([ens.sample(n, L, seed=seed + 7919 * j, label=lab).numpy() for j, lab in enumerate(names)])
    return codes, [lab for lab in names for _ in range(n)]


def _add_fidelity(rows, sets, asked, data, dense, seed: int, reference) -> None:
    """conditional_accuracy, its ceiling and chance on the rows of labelled sets (one classifier,
    trained on the dense training windows; the ceiling read on the reference: (windows, labels))."""
    from analysis.fidelity import LabelClassifier, fidelity_row

    clf = LabelClassifier(dense.train, dense.train_labels, len(data.label_names), seed=seed)
    val, val_labels = reference
    for r in rows:
        if r["model"] in asked:
            f, _ = fidelity_row(sets[r["model"]], asked[r["model"]], data.train, data.train_labels, val, val_labels,
                                data.label_names, seed=seed, c2st=False, classifier=clf)
            r.update({k: f[k] for k in ("conditional_accuracy", "conditional_ceiling", "conditional_chance")})


def main(argv=None) -> int:
    from utils import cli

    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    return cli.run(lambda a: run(build_parser().parse_args(a)), argv)


if __name__ == "__main__":
    sys.exit(main())
