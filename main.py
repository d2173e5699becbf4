#!/usr/bin/env python
"""dnagan: train generative models of DNA, generate sequences, and analyze how good they are.

    python main.py --mode train --model markov --data data/example_genome.fasta --epochs 5
    python main.py --mode gen --checkpoint checkpoints/markov_best.pt --n 150
    python main.py --mode analyze --generated outputs/generated.fasta --data data/example_genome.fasta
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from utils import __version__
from utils import domains as D
from utils.errors import ConfigError

DEFAULT_FAMILY = "seqgan"
log = logging.getLogger("dnagan")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit code 2, via the same path as every other error
        raise ConfigError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="main.py", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--version", action="version", version=f"dnagan {__version__}")
    p.add_argument("--mode", choices=["train", "gen", "analyze"], default="train")
    p.add_argument("--model", default=None, help=f"family (default {DEFAULT_FAMILY}; gen: from checkpoint)")
    p.add_argument("--config", default=None, help="YAML config file instead of configs/<model>.yaml")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override any config field, e.g. --set model.order=3 (repeatable)")
    p.add_argument("--show-config", "--show_config", action="store_true",
                   help="print the resolved config and exit")
    d = p.add_argument_group("data")
    d.add_argument("--data", nargs="+", default=None,
                   help="FASTA/GenBank/text file (train) or reference (gen, analyze); several files (train) label "
                        "their records by the file's stem (gen: each compared with its label's sequences)")
    d.add_argument("--seq_len", type=D.of("data", "seq_len"), default=None)
    d.add_argument("--stride", type=D.of("data", "stride"), default=None, help="window step; default seq_len")
    d.add_argument("--val_fraction", type=D.of("data", "val_fraction"), default=None)
    d.add_argument("--max_sequences", type=D.of("data", "max_sequences"), default=None)
    d.add_argument("--select_apart", action="store_true", default=None,
                   help="deal the held-out blocks into a half that picks best.pt and a half that is judged (train); "
                        "judge only the judged half of --data's split (analyze)")
    d.add_argument("--label_pattern", default=None, metavar="REGEX",
                   help="each record's label: the first group of this regex over its header (default: label=NAME "
                        "in the headers when every record has one)")
    d.add_argument("--labels", default=None, metavar="TSV", help="record id <TAB> label, one line per record")
    d.add_argument("--synthetic", type=D.of("data", "synthetic"), default=None, metavar="N",
                   help="train on N uniformly random windows (a sanity check: nothing to learn)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=D.of("train", "epochs"), default=None)
    t.add_argument("--batch", type=D.of("train", "batch"), default=None)
    t.add_argument("--target_gc", type=D.of("train", "target_gc"), default=None, help="default: the training data's GC")
    t.add_argument("--bagging", action="store_true", default=None)
    t.add_argument("--n_models", type=D.of("train", "n_models"), default=None)
    t.add_argument("--early_stopping", action="store_true", default=None)
    t.add_argument("--patience", type=D.of("train", "patience"), default=None)
    t.add_argument("--curriculum", action="store_true", default=None)
    t.add_argument("--seed", type=D.of("train", "seed"), default=None)
    t.add_argument("--device", default=None,
                   help="auto | cpu | cuda: where training, generation and analyze's C2ST judges run (auto: a GPU if any)")
    t.add_argument("--amp", default=None, choices=["auto", "bf16", "fp16", "off"],
                   help="mixed precision (autocast; fp16 with a GradScaler); auto = bf16 on CUDA from 256 bp, else off")
    t.add_argument("--compile", default=None, choices=["off", "default", "reduce-overhead", "max-autotune"],
                   help="torch.compile the forward of every module of the networks (off by default; see README Scale)")
    t.add_argument("--save_every", type=D.of("train", "save_every"), default=None)
    t.add_argument("--sample_every", type=D.of("train", "sample_every"), default=None)
    t.add_argument("--budget", type=D.of("train", "time_budget"), default=None, help="training time budget in seconds")
    t.add_argument("--run_dir", default=None)
    t.add_argument("--checkpoint_dir", default=None)
    t.add_argument("--resume", default=None, metavar="CKPT", help="continue a run exactly")
    t.add_argument("--init_checkpoint", default=None, metavar="CKPT", help="fine-tune from weights")
    t.add_argument("--overwrite", action="store_true",
                   help="replace <model>_best.pt/_last.pt of an earlier run in --checkpoint_dir")
    add_family_flags(p)
    _generation_and_analysis_flags(p)
    return p


def _generation_and_analysis_flags(p) -> None:
    g = p.add_argument_group("generation")
    g.add_argument("--checkpoint", default=None, help="checkpoint to generate from")
    g.add_argument("--n", type=D.of("gen", "n"), default=None)
    g.add_argument("--temperature", type=D.of("gen", "temperature"), default=None)
    g.add_argument("--prompt", default=None, help="ACGT prefix the generated sequences start with")
    g.add_argument("--infill", default=None, metavar="FASTA",
                   help="fill every N or ? of these sequences (masked family) and write FASTA")
    g.add_argument("--gc", type=D.PROBABILITY, default=None, help="requested GC content (GC-conditional models)")
    g.add_argument("--gc_tilt", default="auto", metavar="auto|off|T",
                   help="with --gc: a logit offset T on C and G at every base; auto (default) calibrates T on pilot "
                        "batches so the mean GC meets --gc; off: the GC class alone")
    g.add_argument("--label", default=None, metavar="NAME",
                   help="sequences of this training label (all: --n of each), from a model trained on labels; "
                        "headers carry label=NAME")
    g.add_argument("--guidance", type=float, default=None, metavar="W",
                   help="classifier-free guidance (stacked, gumbel, seqgan, masked trained with classes: labels or GC bins): logits = "
                        "null + W (conditional - null); 1 = the conditional model, 0 = unconditional, >1 sharper classes; "
                        "default: the checkpoint's gen.guidance for --label (masked 1.1), else 1")
    g.add_argument("--max_identity", type=D.PROBABILITY, default=None, metavar="X",
                   help="redraw every sequence more than X identical to a training window (any offset, either "
                        "strand; the training data is the checkpoint's, or --data)")
    g.add_argument("--output", default=None, help="FASTA path; a .txt twin is written beside it")
    a = p.add_argument_group("analyze")
    a.add_argument("--generated", default=None)
    a.add_argument("--heldout", default=None, help="reference sequences instead of --data's windows")
    a.add_argument("--run", default=None, metavar="RUN_DIR",
                   help="analyze a run directory: its final sample against its own held-out split")
    add_ref_stride(a)
    a.add_argument("--no-baseline", "--no_baseline", dest="baseline", action="store_false",
                   help="skip the judge's power check: an order-5 Markov chain trained on --data's training windows, "
                        "judged beside the generated set and the real-vs-real floor (seconds at 70 bp on a bacterium)")
    a.add_argument("--output-dir", "--output_dir", dest="output_dir", default=None)
    a.add_argument("--motifs", default=None, metavar="GROUP",
                   help="also scan JASPAR CORE profiles (pyjaspar): all, vertebrates, plants, insects, fungi, "
                        "nematodes or urochordates; the first use of a group reads the database for minutes, then it "
                        "is cached")


def add_ref_stride(group) -> None:
    """--ref_stride, the reference of analyze and compare_models (analysis.judge.reference_windows)."""
    group.add_argument("--ref_stride", type=D.COUNT, default=None, metavar="N",
                       help="the reference: --data's held-out windows every N bases (default 10; above 70 bp 35, "
                            "the judge's folds by block; as the benchmarks; 0 = the non-overlapping windows, random "
                            "folds)")


def family_flags() -> dict:
    """Every registered family's flags (declared on its Config), by config field: (Flag, owners)."""
    from models.registry import FAMILIES, get_family
    from utils.config import flags_of

    get_family(DEFAULT_FAMILY)  # imports and registers every family
    out: dict = {}
    for name in sorted(FAMILIES):
        for f in flags_of(FAMILIES[name].Config):
            out.setdefault(f.dest, (f, []))[1].append(name)
    return out


def add_family_flags(p) -> None:
    g = p.add_argument_group("family options (each applies to the families it names)")
    for dest, (f, owners) in family_flags().items():
        kw = {"action": "store_true"} if f.type is bool else {"type": f.parse}
        g.add_argument(*f.names, dest=dest, default=None, help=f"{f.help} [{', '.join(owners)}]", **kw)


def _overrides(args) -> dict:
    """CLI flags (only those given) as config sections."""
    spec = {
        "data": {"path": args.data, "seq_len": args.seq_len, "stride": args.stride,
                 "val_fraction": args.val_fraction, "max_sequences": args.max_sequences,
                 "select_apart": args.select_apart,
                 "synthetic": args.synthetic, "label_pattern": args.label_pattern, "labels": args.labels},
        "train": {"epochs": args.epochs, "batch": args.batch, "target_gc": args.target_gc,
                  "bagging": args.bagging, "n_models": args.n_models,
                  "early_stopping": args.early_stopping, "patience": args.patience,
                  "curriculum": args.curriculum, "seed": args.seed, "device": args.device, "amp": args.amp,
                  "compile": args.compile, "save_every": args.save_every, "sample_every": args.sample_every,
                  "time_budget": args.budget, "run_dir": args.run_dir,
                  "checkpoint_dir": args.checkpoint_dir},
        "gen": {"n": args.n, "temperature": args.temperature, "output": args.output},
        "model": {dest: getattr(args, dest) for dest in family_flags()},
    }
    out = {s: {k: v for k, v in kv.items() if v is not None} for s, kv in spec.items()}
    if args.data is not None:
        from utils.sequences import normalize_path

        paths = [normalize_path(p) for p in (args.data if isinstance(args.data, list) else [args.data])]
        out["data"]["path"] = paths[0] if len(paths) == 1 else paths
    return out


FLAG_OF = {("train", "time_budget"): "--budget"}


def given_settings(args) -> dict:
    """The settings the user gave, {(section, key): (as given, value)}: flags, then --set."""
    from utils.config import parse_set

    out = {}
    for section, kv in _overrides(args).items():
        for k, v in kv.items():
            flag = FLAG_OF.get((section, k), f"--{'data' if k == 'path' else k}")
            out[(section, k)] = (f"{flag} {v}", v)
    for section, kv in parse_set(args.set).items():
        for k, v in kv.items():
            out[(section, k)] = (f"--set {section}.{k}={v}", v)
    return out


def resolve_config(args, family_name: str | None = None):
    from models.registry import get_family
    from utils.config import parse_set, resolve

    family = get_family(family_name or args.model or DEFAULT_FAMILY)
    over = _overrides(args)
    flags = family_flags()
    for key in over["model"]:
        f, owners = flags[key]
        if family.name not in owners:
            raise ConfigError(f"{f.names[0]} does not apply to the {family.name!r} family (it is {', '.join(owners)}'s)")
    return resolve(family.name, family.Config, over, parse_set(args.set), config_file=args.config)


def cmd_train(args) -> int:
    from train import judging
    from train.engine import train
    from utils import modality

    if args.checkpoint:
        raise ConfigError("--checkpoint is for --mode gen; use --resume CKPT or --init_checkpoint CKPT")
    family = None
    if args.resume:
        from train import checkpoint as ckpt_io

        if args.config:
            raise ConfigError("--config does not apply with --resume: the run's config is stored in the checkpoint")
        family = ckpt_io.load(args.resume)["family"]  # --model may be left out when resuming
        if args.model and args.model != family:
            raise ConfigError(f"--model {args.model} but {args.resume} is a {family!r} run")
    cfg = resolve_config(args, family)
    if args.show_config:
        print(cfg.to_yaml(), end="")
        return 0
    res = train(cfg, resume=args.resume, init_checkpoint=args.init_checkpoint, given=given_settings(args),
                overwrite=args.overwrite)
    if not res.main:
        return 0
    last = res.history[-1] if res.history else {}
    watch = modality.of(res.ensemble.stats.kind).summary(last) if last else "no epoch ran"
    watch += judging.summary(res.history)  # the per-epoch judge's last figure
    print(f"trained {cfg.family} for {res.epochs_done} epoch(s) in {res.seconds:.1f} s; "
          f"run: {res.run_dir}; checkpoints: {res.best_path}, {res.last_path}; {watch}")
    return 0


def cmd_gen(args) -> int:
    import torch

    from train.engine import load_ensemble
    from utils import modality

    if not args.checkpoint:
        raise ConfigError("--mode gen needs --checkpoint CKPT")
    ens, ck = load_ensemble(args.checkpoint, device=args.device or "auto")
    if args.model and args.model != ens.family.name:
        raise ConfigError(f"--model {args.model} but {args.checkpoint} is a {ens.family.name!r} checkpoint")
    if args.show_config:
        print(ens.cfg.to_yaml(), end="")
        return 0
    if args.infill:
        return _infill(args, ens)
    kind = modality.of(ens.stats.kind)
    n = args.n if args.n is not None else ens.cfg.gen.n
    temp = args.temperature if args.temperature is not None else ens.cfg.gen.temperature
    seed = args.seed if args.seed is not None else ens.cfg.train.seed
    length = args.seq_len or ens.cfg.gen.seq_len or ens.stats.seq_len
    if n < 1 or temp <= 0 or length < 1:
        raise ConfigError("--n, --temperature and --seq_len must be positive")
    prompt = kind.prompt(args.prompt) if args.prompt else None
    if args.gc is not None and not 0 <= args.gc <= 1:
        raise ConfigError(f"--gc must be a fraction between 0 and 1, got {args.gc}")
    wanted = [args.label]
    if args.label == "all" and ens.stats.label_names:
        wanted = list(ens.stats.label_names)
    guidance = _guidance(args, ens)
    parts = []
    for j, label in enumerate(wanted):
        tilt = _gc_tilt(args, ens, length, dict(temperature=temp, prompt=prompt, label=label, guidance=guidance),
                        seed + 7919 * j + 104729)
        codes = ens.sample(n, length, temperature=temp, seed=seed + 7919 * j, prompt=prompt, gc=args.gc, label=label,
                           guidance=guidance, gc_tilt=tilt)
        if args.max_identity is not None:
            codes = _limit_identity(args, ens, codes, lambda m, r, label=label, tilt=tilt: ens.sample(
                m, length, temperature=temp, seed=seed + 7919 * j + 1 + r, prompt=prompt, gc=args.gc, label=label,
                guidance=guidance, gc_tilt=tilt))
        parts.append(codes)
    codes = parts[0] if len(parts) == 1 else torch.cat([torch.as_tensor(p) for p in parts])  # --max_identity: numpy
    labels = [lab for lab, p in zip(wanted, parts) for _ in range(len(p))] if args.label is not None else None
    print(kind.write_generated(args.output or kind.default_output(ens.cfg.gen.output), codes, model=ens.family.name,
                               checkpoint=Path(args.checkpoint).name, temperature=temp, labels=labels))
    if args.data:
        _warn_other_data(args.data, ck, args.checkpoint)
        for path, rows, what in _versus_parts(args.data, codes, labels):
            print(what + kind.versus_data(rows, path, length))
    return 0


def _versus_parts(data, codes, labels):
    """(file, generated rows, prefix) per --data file: with several files, the rows generated as the
    label named by a file's stem (training on several files labels by stem) are compared with that
    file, the others with all rows."""
    from utils.labels import file_label

    if not isinstance(data, list):
        return [(data, codes, "")]
    out = []
    for path in data:
        stem = file_label(path)
        mine = [i for i, lab in enumerate(labels or []) if lab == stem]
        out.append((path, codes[mine], f"label {stem} ") if mine else (path, codes, ""))
    return out


def _guidance(args, ens) -> float | None:
    """--guidance W; without it, for --label, the W the checkpoint's config chose
    (Ensemble.label_guidance: masked 1.1, measured by bench/conditional.py), said in the log."""
    if args.guidance is not None or args.label is None:
        return args.guidance
    w = ens.label_guidance()
    if w is not None:
        log.info("classifier-free guidance %g for --label (the checkpoint's gen.guidance; --guidance 1 for the "
                 "conditional model alone)", w)
    return w


def _gc_tilt(args, ens, length, kw, seed) -> float:
    """--gc_tilt: the C/G logit offset for --gc (0 without --gc or with off); auto calibrates it on
    pilot batches of other seeds than the output's (Ensemble.calibrate_gc) and says what it found."""
    if args.gc is None or args.gc_tilt == "off":
        return 0.0
    if args.gc_tilt != "auto":
        try:
            return float(args.gc_tilt)
        except ValueError:
            raise ConfigError(f"--gc_tilt must be auto, off or a number, got {args.gc_tilt!r}") from None
    tilt, got, draws = ens.calibrate_gc(args.gc, length, seed=seed, **kw)
    label = f" (label {kw['label']})" if kw.get("label") else ""
    print(f"--gc {args.gc}{label}: GC tilt {tilt:+.3f}, pilot mean GC {got:.4f} ({draws} pilot batches of 512)")
    return tilt


def _limit_identity(args, ens, codes, draw):
    """--max_identity: redraw the sequences too close to the training windows the checkpoint was trained
    on (its data file and split, or --data's), and say how many were redrawn."""
    from analysis.neighbours import redraw_near_copies
    from utils.sequences import load_sequences

    d, t = ens.cfg.data, ens.cfg.train
    if ens.stats.kind != "dna":
        raise ConfigError("--max_identity: identity is a DNA notion; this checkpoint generates real values")
    path = args.data or d.path
    if d.synthetic and not args.data:
        raise ConfigError("--max_identity: the checkpoint was trained on synthetic windows; give --data FILE")
    for p in path if isinstance(path, list) else [path]:
        if not Path(p).exists():
            raise ConfigError(f"--max_identity: {p} (the training data) not found; give --data FILE")
    data = load_sequences(path, codes.shape[1], stride=d.stride, val_fraction=d.val_fraction,
                          block_size=d.block_size, seed=t.seed, crop=d.crop_records)
    kept, redrawn, dropped = redraw_near_copies(codes, draw, data.train_segments, args.max_identity)
    print(f"--max_identity {args.max_identity}: {redrawn} draw(s) redrawn for being more than {args.max_identity:.0%} "
          f"identical to a training window of {' '.join(map(str, path)) if isinstance(path, list) else path}" + (f"; {dropped} still too close after 20 rounds, dropped"
                                                         if dropped else ""))
    if not len(kept):
        raise ConfigError(f"--max_identity {args.max_identity}: every sequence stayed too close to the training data")
    return kept


def _warn_other_data(path, ck: dict, ck_path) -> None:
    """One line when --data is not the file the checkpoint was trained on (by content hash)."""
    from train.checkpoint import file_hash

    trained = ck.get("data_sha256")
    if trained and file_hash(path) not in (None, trained):
        log.warning("warning: %s is not the file %s was trained on (%s; the sha256 differs)", path, ck_path,
                    ck.get("stats", {}).get("source", "?"))


def _infill(args, ens) -> int:
    import numpy as np
    import torch

    from utils.sequences import atomic_write_text, fasta_text, read_gapped

    fill = getattr(ens.family, "infill", None)
    if fill is None:
        raise ConfigError(f"--infill: the {ens.family.name!r} family does not fill gaps (use --model masked)")
    cond = {}
    if args.label is not None:
        cond["label"] = ens.label_index(args.label)
    if args.gc is not None:
        cond["gc"] = args.gc
    guidance = _guidance(args, ens)
    if guidance is not None:
        cond["guidance"] = guidance
    records = read_gapped(args.infill)
    temp = args.temperature if args.temperature is not None else ens.cfg.gen.temperature
    g = torch.Generator(device=ens.device).manual_seed(args.seed if args.seed is not None else ens.cfg.train.seed)
    seqs, heads, filled = [], [], 0
    for i, (rid, codes, gaps, text) in enumerate(records):
        nets = ens.members[i % len(ens.members)]
        nets.eval()
        new = fill(nets, torch.from_numpy(codes).long(), torch.from_numpy(gaps), temperature=temp,
                   generator=g, **cond).numpy()
        chars = np.frombuffer(text.encode("ascii", "replace"), np.uint8).copy()
        chars[gaps] = np.frombuffer(b"ACGT", np.uint8)[new[gaps]]
        seqs.append(chars.tobytes().decode("ascii"))
        heads.append(f"{rid} infilled={int(gaps.sum())} model={ens.family.name} checkpoint={Path(args.checkpoint).name}"
                     + (f" label={args.label}" if args.label is not None else ""))
        filled += int(gaps.sum())
    out = Path(args.output or "outputs/infilled.fasta")
    atomic_write_text(out, fasta_text(seqs, heads))
    print(f"filled {filled} gap positions in {len(records)} record(s) of {args.infill}; wrote {out}")
    return 0


def cmd_analyze(args) -> int:
    from analysis.compare import c2st_text
    from analysis.report import analyze, reading_notes
    from train.engine import resolve_device
    from utils.sequences import load_sequences, read_sequences

    judge_device = resolve_device(args.device or "auto")  # where the C2ST judges train; a bad --device fails first
    if args.run:
        gen_path, data, (ref, ref_groups), where, load = _run_inputs(args.run, args.seq_len, args.ref_stride)
        gen = read_sequences(gen_path, seq_len=data.seq_len)
    else:
        gen_path = args.generated or "outputs/generated.fasta"
        data_path = args.data or "data/example_genome.fasta"
        gen = read_sequences(gen_path, seq_len=args.seq_len)
        data, (ref, ref_groups), where, load = _analyze_reference(args, data_path, gen.shape[1])
    out = args.output_dir or (str(Path(args.run) / "analysis") if args.run else "outputs/analysis")
    if args.motifs:
        from analysis.motifs import GROUPS

        if args.motifs not in GROUPS:
            raise ConfigError(f"--motifs {args.motifs}: choose one of {', '.join(GROUPS)}")
    labelled = _labelled_reference(gen_path, data, load, (ref, ref_groups), args.ref_stride)
    # the floor and the judge's power need a reference apart from the training windows
    apart = bool(data.val.shape[0]) or bool(args.heldout and not args.run)
    baseline = _power_baseline(data, min(gen.shape[0], ref.shape[0], data.train.shape[0]), args.seed or 0) \
        if apart and args.baseline else None
    row = analyze(gen, ref, out, train_segments=data.train_segments, train=data.train, ref_groups=ref_groups,
                  seed=args.seed or 0, motifs=args.motifs, title=f"{Path(gen_path).name} vs {where}",
                  labelled=labelled, floor=apart, baseline=baseline, judge_device=judge_device)
    print(f"analyzed {row['n']} sequences against {where}: GC {row['gc_mean']:.3f} "
          f"(real {row['gc_ref']:.3f}), 4-mer JS {row['js_4mer']:.4f}, unique {row['unique_fraction']:.3f}, "
          f"exact copies {row.get('exact_copies')}, C2ST AUC {c2st_text(row)}; report in {out}/")
    for note in reading_notes(row):
        print(f"note: {note}")
    if labelled is not None:
        print(f"conditional accuracy {row['conditional_accuracy']:.3f} (real held-out ceiling "
              f"{row['conditional_ceiling']:.3f}, chance {row['conditional_chance']:.3f}) over "
              f"{row['conditional_labels']} labels")
        _print_label_c2st(row, data.label_names)
    return 0


def _print_label_c2st(row: dict, names) -> None:
    """One line a label: its C2ST against its own held-out windows, beside its real-vs-real floor."""
    from analysis.compare import c2st_text
    from analysis.report import interval_of

    for name in names:
        lab = {k.removeprefix(f"label_{name}_"): v for k, v in row.items() if k.startswith(f"label_{name}_c2st")}
        if "c2st_auc" not in lab:
            continue
        floor = ""
        if "c2st_floor" in lab:
            floor = f"; real training windows {c2st_text(interval_of(lab, 'c2st_floor'))}: {lab['c2st_vs_floor']}"
        print(f"label {name}: C2ST {c2st_text(lab)} at {lab['c2st_n']} a side{floor}")


def _power_baseline(data, n: int, seed: int):
    """n sequences (at most the judge's MAX_N) of an order-5 Markov chain trained on data's training
    windows (train.baselines): analyze judges them to say whether its C2ST can tell anything here."""
    from analysis.judge import MAX_N
    from train.baselines import fit_baseline

    log.info("the judge's power: an order-5 Markov chain on the training windows (--no-baseline skips it)")
    return fit_baseline(data).sample(min(n, MAX_N), data.seq_len, seed=seed).numpy()


def _labelled_reference(gen_path, data, load, reference, stride) -> dict | None:
    """The inputs of the conditional fidelity when the reference has labels and the generated headers
    carry label=NAME (analysis.fidelity); None otherwise (a note says why when only one side has them).
    The label classifier trains on the training blocks' windows every seq_len / 5 bases (the same
    split, 5x the windows of the non-overlapping ones); its ceiling and each label's figures are read
    on the reference (windows, blocks) every ``stride`` bases, as the set's own figures."""
    from analysis.judge import reference_labels
    from utils.labels import generated_labels

    gen_labels = generated_labels(gen_path)
    if data.train_labels is None or gen_labels is None:
        if gen_labels is not None:
            log.warning("note: %s asks for labels but the reference has none (give --data several files, label= "
                        "headers, --label_pattern or --labels): no conditional fidelity", gen_path)
        return None
    if data.val.shape[0]:  # --data's held-out blocks are the reference; each label's floor its training windows
        (val, val_groups), val_labels = reference, reference_labels(data, stride)
        floor = (data.train, data.train_labels)
    else:  # --heldout has no labels: the training windows, as before, and no floor apart from them
        val, val_groups, val_labels, floor = data.train, None, data.train_labels, None
    dense = load(stride=max(1, data.seq_len // 5))
    return {"gen_labels": gen_labels, "train": dense.train, "train_labels": dense.train_labels, "val": val,
            "val_labels": val_labels, "val_groups": val_groups, "floor": floor, "label_names": data.label_names}


def _analyze_reference(args, data_path, length):
    """(data, (reference, its windows' blocks or None), description, load). The reference is
    --heldout's sequences, or else the held-out blocks of --data split as training splits it
    (train.seed, data.val_fraction), in windows every --ref_stride bases (analysis.judge.reference_windows):
    real windows the nearest-identity and copy checks are not run against, as everywhere else.
    load(**changes) reads the data again with other options (e.g. a denser stride)."""
    from analysis.judge import reference_windows
    from utils.config import DataConfig, TrainConfig
    from utils.sequences import load_sequences, read_sequences

    from utils.labels import LabelSource

    source = LabelSource(pattern=args.label_pattern, table=args.labels)
    source = source if (source.pattern or source.table) else None
    if args.heldout:
        opts = {"val_fraction": 0.0, "labels": source}
    else:
        d = DataConfig()
        opts = {"val_fraction": args.val_fraction if args.val_fraction is not None else d.val_fraction,
                "block_size": d.block_size, "seed": args.seed if args.seed is not None else TrainConfig.seed,
                "labels": source, "select_apart": bool(args.select_apart)}

    def load(**changes):
        return load_sequences(data_path, length, **{**opts, **changes})

    data = load()
    if args.heldout:
        heldout = read_sequences(args.heldout, seq_len=length)
        return data, (heldout, None), f"{data_path} (reference: {args.heldout})", load
    ref, groups, what = reference_windows(data, args.ref_stride)
    half = ", their judged half" if args.select_apart and data.val.shape[0] else ""
    return data, (ref, groups), f"{data_path} ({what}{half})", load


def _run_inputs(run_dir, seq_len=None, ref_stride=None):
    """A run directory's final sample, its data split (as trained), (its held-out windows every
    ref_stride bases, their blocks or None: analysis.judge.reference_windows), their description and
    load(**changes) (the data read again with other options)."""
    import re

    import yaml

    from analysis.judge import reference_windows
    from utils.sequences import load_sequences

    run = Path(run_dir)
    cfg_path = run / "config.yaml"
    if not cfg_path.exists():
        raise ConfigError(f"{run}: not a run directory (no config.yaml)")
    samples = sorted(run.glob("sequences/epoch*.fasta"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    if not samples:
        raise ConfigError(f"{run}: no sequences/epoch*.fasta (train with --sample_every N)")
    cfg = yaml.safe_load(cfg_path.read_text())
    d, t = cfg["data"], cfg["train"]
    from utils.labels import LabelSource

    source = LabelSource(pattern=d.get("label_pattern") or None, table=d.get("labels") or None)
    opts = {"stride": d.get("stride", 0), "val_fraction": d.get("val_fraction", 0.2),
            "block_size": d.get("block_size", 10_000), "seed": t.get("seed", 42), "crop": d.get("crop_records", False),
            "labels": source if (source.pattern or source.table) else None,
            "select_apart": bool(d.get("select_apart", False))}

    def load(**changes):
        return load_sequences(d["path"], seq_len or d["seq_len"], **{**opts, **changes})

    data = load()
    ref, groups, what = reference_windows(data, ref_stride)
    half = ", their judged half: data.select_apart" if opts["select_apart"] and data.val.shape[0] else ""
    return samples[-1], data, (ref, groups), f"{d['path']} ({what}{half})", load


def dispatch(argv) -> int:
    args = build_parser().parse_args(argv)
    if args.data is not None:
        args.data = args.data[0] if len(args.data) == 1 else args.data
    return {"train": cmd_train, "gen": cmd_gen, "analyze": cmd_analyze}[args.mode](args)


def main(argv=None) -> int:
    from utils import cli

    from train.distributed import env_rank

    # under torchrun only rank 0 logs; the other ranks print errors and nothing else
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    log.setLevel(logging.NOTSET if env_rank() == 0 else logging.ERROR)
    return cli.run(dispatch, argv)


if __name__ == "__main__":
    sys.exit(main())
