"""The one training engine. It knows the Family interface, never a family's name.

Device and seeds, epochs and batches (tqdm), Adam + ExponentialLR per parameter group, gradient
clipping, curriculum, per-epoch monitoring into metrics.csv, early stopping on a validation score,
bagged ensembles, atomic checkpoints with RNG state for exact resume, and a time budget.
"""
from __future__ import annotations

import csv
import logging
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from analysis import metrics as M
from models.registry import DataStats, Family, get_family
from train import checkpoint as ckpt_io
from train.curriculum import from_config as curriculum_from_config
from utils import config as C
from utils.errors import CheckpointError, ConfigError, DnaganError
from analysis import distributions as DS
from utils.sequences import (SequenceData, decode, is_signal_file, load_sequences, load_signals, write_fasta,
                             write_samples)

log = logging.getLogger("dnagan")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def load_data(cfg: C.RunConfig) -> SequenceData:
    d = cfg.data
    if d.synthetic:
        return synthetic_data(d.synthetic, d.seq_len, d.val_fraction, cfg.train.seed)
    if is_signal_file(d.path):  # a text file of numbers: real-valued sequences, their own length
        return load_signals(d.path, val_fraction=d.val_fraction)
    return load_sequences(d.path, d.seq_len, stride=d.stride, val_fraction=d.val_fraction,
                          block_size=d.block_size, max_sequences=d.max_sequences,
                          seed=cfg.train.seed, crop=d.crop_records)


def synthetic_data(n: int, seq_len: int, val_fraction: float, seed: int) -> SequenceData:
    """The masked-transformer devlog's sanity check: n uniformly random ACGT windows, nothing to
    learn beyond chance (25% masked accuracy)."""
    rng = np.random.default_rng(seed + 104729)
    x = rng.integers(0, 4, (n, seq_len), dtype=np.uint8)
    n_val = int(round(n * val_fraction))
    return SequenceData(train=x[n_val:], val=x[:n_val], train_segments=list(x[n_val:]),
                        val_segments=list(x[:n_val]), n_records=n, source=f"synthetic:{n}")


@dataclass
class StepContext:
    """What a family's train_step may use: schedules, targets, randomness and its optimisers."""

    epoch: int
    length: int
    balance_weight: float
    temperature: float
    target_gc: float
    ref_freq: tuple
    device: torch.device
    generator: torch.Generator
    cfg: C.RunConfig
    optimizers: dict = field(default_factory=dict)
    step: int = 0
    val: torch.Tensor | None = None  # held-out windows (CPU), for families' epoch_metrics
    train: torch.Tensor | None = None  # training windows (CPU), for families that draw extra batches

    def optimize(self, name: str, loss: torch.Tensor) -> float:
        """zero_grad, backward, clip (train.clip_norm), step for one parameter group; returns the
        gradient norm before clipping."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        clip = self.cfg.train.clip_norm
        norm = nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
        opt.step()
        return float(norm)


@dataclass
class Ensemble:
    """Trained members of one family, as rebuilt from a checkpoint or returned by train()."""

    family: Family
    cfg: C.RunConfig
    members: list
    stats: DataStats
    device: torch.device

    @torch.no_grad()
    def sample(self, n: int, length: int | None = None, *, temperature: float = 1.0, seed: int = 0,
               prompt: torch.Tensor | None = None, gc: float | None = None) -> torch.Tensor:
        """(n, length) codes; sequence i comes from member i mod K (members drawn in turn).
        ``gc`` asks a conditional family for sequences of that GC content."""
        length = length or self.stats.seq_len
        extra = {}
        if gc is not None:
            if not self.family.conditional:
                raise ConfigError(f"--gc: the {self.family.name!r} family does not generate to a requested GC")
            extra["gc"] = float(gc)
        g = torch.Generator(device=self.device).manual_seed(seed)
        K = len(self.members)
        out = None
        for m, nets in enumerate(self.members):
            n_m = len(range(m, n, K))
            if n_m == 0:
                continue
            nets.eval()
            x = self.family.sample(nets, n_m, length, temperature=temperature, generator=g,
                                   prompt=prompt, **extra).cpu()
            if out is None:  # long codes for DNA, floats for real-valued families
                out = torch.empty(n, length, dtype=x.dtype)
            out[m::K] = x
        return out


def _monitor_dna(sample, val, epoch: int) -> dict:
    """Per-epoch watch values of a DNA sample against held-out windows; val_score (lower is
    better) = 4-mer JS + |GC - held-out GC|."""
    gc, val_gc = float(M.gc_content(sample).mean()), float(M.gc_content(val).mean())
    js4 = M.kmer_js(sample, val, 4)
    return {"sample_gc": gc, "val_gc": val_gc, "unique_fraction": M.unique_fraction(sample),
            "morans_i": _nanmean(M.morans_i(sample)),
            "diversity": M.mean_pairwise_hamming(sample, max_n=200, seed=epoch),
            "val_js_4mer": js4, "val_score": js4 + abs(gc - val_gc)}


def _monitor_signals(sample, val, epoch: int) -> dict:
    """The same for real-valued sequences; val_score = KS statistic + mean |autocorrelation
    difference| over lags 1-5."""
    ks, _ = DS.ks(sample, val)
    acf = float(np.nanmean(np.abs(DS.autocorrelation(sample) - DS.autocorrelation(val))))
    div = DS.diversity(sample, max_n=200, seed=epoch)
    return {"sample_mean": float(sample.mean()), "val_mean": float(val.mean()), "sample_std": float(sample.std()),
            "val_std": float(val.std()), "ks": ks, "wasserstein": DS.wasserstein(sample, val), "acf_mae": acf,
            "unique_fraction": div["unique_fraction"], "diversity": div["mean_pairwise_distance"],
            "val_score": ks + acf}


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def _run_dir(cfg: C.RunConfig) -> Path:
    if cfg.train.run_dir:
        return Path(cfg.train.run_dir)
    return Path("runs") / f"{cfg.family}_{time.strftime('%Y%m%d-%H%M%S')}"


def _rng_state(shuffle_gen, fam_gen) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": list(random.getstate()[1]),
        "shuffle": shuffle_gen.get_state(),
        "family": fam_gen.get_state(),
    }


def _set_rng_state(st: dict, shuffle_gen, fam_gen) -> None:
    torch.set_rng_state(st["torch"])
    if st.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
    keys = st["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, st["numpy_pos"]))
    random.setstate((3, tuple(st["python"]), None))
    shuffle_gen.set_state(st["shuffle"])
    fam_gen.set_state(st["family"])


def build_members(family: Family, cfg: C.RunConfig, stats: DataStats, device) -> list:
    k = cfg.train.n_models if (cfg.train.bagging or cfg.train.n_models > 1) else 1
    if k < 1:
        raise ConfigError(f"--n_models must be >= 1, got {k}")
    return [family.build(cfg, stats).to(device) for _ in range(k)]


def load_ensemble(path, device: str = "auto") -> tuple[Ensemble, dict]:
    """Rebuild an ensemble from a checkpoint: no flags needed beyond the path."""
    dev = resolve_device(device)
    ck = ckpt_io.load(path, map_location=dev)
    family = get_family(ck["family"])
    try:
        cfg = C.from_dict(ck["config"], family.Config)
    except DnaganError as exc:
        raise CheckpointError(f"{path}: stored config does not fit this version ({exc})") from None
    s = ck["stats"]
    stats = DataStats(seq_len=int(s["seq_len"]), base_freq=tuple(s["base_freq"]), gc=float(s["gc"]),
                      gc_percentiles=tuple(s.get("gc_percentiles", ())), kind=s.get("kind", "dna"))
    members = [family.build(cfg, stats).to(dev) for _ in ck["members"]]
    for nets, sd in zip(members, ck["members"]):
        try:
            nets.load_state_dict(sd)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not fit the stored config ({str(exc)[:160]})") from None
    return Ensemble(family, cfg, members, stats, dev), ck


@dataclass
class TrainResult:
    ensemble: Ensemble
    history: list
    run_dir: Path
    best_path: Path | None
    last_path: Path | None
    epochs_done: int
    seconds: float


def _finish(family, members, ctx, train_x, boots, history, save) -> None:
    """The family's closing fit on every member (each on its own, possibly bootstrapped, windows);
    its figures join the last metrics row, and the final epoch's checkpoints are written again."""
    t = time.time()
    figures: dict[str, float] = {}
    for m, nets in enumerate(members):
        for k, v in family.finish(nets, train_x[torch.from_numpy(np.sort(boots[m]))], ctx).items():
            figures[k] = figures.get(k, 0.0) + v / len(members)
    if not figures:
        return
    figures["finish_s"] = time.time() - t
    history[-1].update(figures)
    log.info("closing fit: %s", " ".join(f"{k}={v:.5g}" for k, v in figures.items()))
    if save:
        _write_metrics(save["metrics"], history)
        p = save["payload"]()
        for key in ("last", "best", "epoch"):
            if save[key] is not None:
                ckpt_io.save(save[key], p)


def _write_metrics(path: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def _read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as fh:
        return [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def _num(v):
    try:
        f = float(v)
        return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f
    except (TypeError, ValueError):
        return v


def train(cfg: C.RunConfig, *, resume: str | None = None, init_checkpoint: str | None = None,
          data: SequenceData | None = None, save: bool = True) -> TrainResult:
    t0 = time.time()
    tc = cfg.train
    family = get_family(cfg.family)
    device = resolve_device(tc.device)
    resume_ck = None
    if resume:
        resume_ck = ckpt_io.load(resume, map_location=device)
        if resume_ck["family"] != cfg.family:
            raise CheckpointError(f"{resume}: checkpoint is a {resume_ck['family']!r} run, not {cfg.family!r}")
        # Resume continues the stored run exactly: its config wins over flags, except the epoch
        # count (to extend a run) and the time budget.
        stored = C.from_dict(resume_ck["config"], family.Config)
        cfg = C.replace(stored, train={"epochs": tc.epochs, "time_budget": tc.time_budget,
                                       "device": tc.device})
        tc = cfg.train
    if tc.target_gc is not None and tc.balance_weight == 0 and tc.target_gc_weight > 0:
        # --target_gc asks for a pull toward that GC; a family whose default weight is 0 gets one
        cfg = C.replace(cfg, train={"balance_weight": tc.target_gc_weight})
        tc = cfg.train
        log.info("--target_gc %.3f: GC-balanced term at weight %.3g (train.target_gc_weight)",
                 tc.target_gc, tc.balance_weight)
    seed_everything(tc.seed)
    data = data if data is not None else load_data(cfg)
    val = data.val if data.val.shape[0] else data.train
    if not data.val.shape[0]:
        log.warning("validation set is empty; the validation score uses training windows")
    signal = data.kind == "signal"
    if signal:
        if not family.continuous:
            raise ConfigError(f"{data.source}: real-valued sequences; the {family.name!r} family models DNA "
                              f"(use --model seqgan)")
        log.info("%s: %d training and %d held-out real-valued sequences of length %d",
                 data.source, data.train.shape[0], data.val.shape[0], data.seq_len)
        target_gc = float("nan")
        stats = DataStats(seq_len=data.seq_len, base_freq=(0.25,) * 4, gc=float("nan"), kind="signal")
    else:
        target_gc = tc.target_gc if tc.target_gc is not None else data.gc()
        stats = DataStats(seq_len=data.seq_len, base_freq=tuple(float(f) for f in data.base_freq()),
                          gc=float(data.gc()),
                          gc_percentiles=tuple(float(v) for v in np.percentile(M.gc_content(data.train), np.arange(101))))
    n_epochs = tc.epochs or family.planned_epochs(cfg)
    if n_epochs < 1:
        raise ConfigError("train.epochs must be >= 1 (0 means the family's phase plan, and this one has none)")
    members = build_members(family, cfg, stats, device)
    if init_checkpoint:
        src, _ = load_ensemble(init_checkpoint, device=str(device))
        if src.family.name != family.name:
            raise CheckpointError(f"{init_checkpoint}: a {src.family.name!r} checkpoint cannot initialise {family.name!r}")
        for i, nets in enumerate(members):
            try:
                nets.load_state_dict(src.members[i % len(src.members)].state_dict())
                family.unfinish(nets)
            except RuntimeError as exc:
                raise CheckpointError(f"{init_checkpoint}: weights do not fit this config ({str(exc)[:160]})") from None

    opts, scheds = [], []
    for nets in members:
        o, s = {}, {}
        for name, params in family.param_groups(nets).items():
            lr = {"g": tc.lr_g, "d": tc.lr_d}.get(name) or family.group_lr(cfg, name) or tc.lr_g
            o[name] = torch.optim.Adam(params, lr=lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)
            s[name] = torch.optim.lr_scheduler.ExponentialLR(o[name], gamma=tc.lr_gamma)
        opts.append(o)
        scheds.append(s)

    n_train = data.train.shape[0]
    boot_rng = np.random.default_rng(tc.seed + 7919)
    boots = [boot_rng.integers(0, n_train, n_train) if tc.bagging else np.arange(n_train)
             for _ in members]
    shuffle_gen = torch.Generator().manual_seed(tc.seed + 1)
    fam_gen = torch.Generator(device=device).manual_seed(tc.seed + 2)
    if tc.curriculum and signal:
        raise ConfigError("--curriculum grows DNA windows; it does not apply to real-valued sequences")
    curriculum = curriculum_from_config(tc, data.seq_len) if tc.curriculum else None
    schedule = curriculum_from_config(tc, data.seq_len)  # temperature annealing without --curriculum

    start_epoch, best, since_best, step = 0, math.inf, 0, 0
    run_dir = _run_dir(cfg)
    history: list[dict] = []
    if resume_ck is not None:
        for nets, sd in zip(members, resume_ck["members"]):
            nets.load_state_dict(sd)
            family.unfinish(nets)  # a finished run's closing fit is redone at the new end
        for o, s, osd, ssd in zip(opts, scheds, resume_ck["optimizers"], resume_ck["schedulers"]):
            for name in o:
                o[name].load_state_dict(osd[name])
                s[name].load_state_dict(ssd[name])
        _set_rng_state(resume_ck["rng"], shuffle_gen, fam_gen)
        start_epoch = int(resume_ck["epoch"])
        best, since_best = float(resume_ck["best_score"]), int(resume_ck["epochs_since_best"])
        step = int(resume_ck.get("step", 0))
        run_dir = Path(resume_ck.get("run_dir") or run_dir)
        history = [r for r in _read_metrics(run_dir / "metrics.csv") if r.get("epoch", 0) <= start_epoch]
        log.info("resuming %s from epoch %d", resume, start_epoch)
    elif save and cfg.train.run_dir and (run_dir / "metrics.csv").exists():
        raise ConfigError(f"{run_dir}: already holds a run; pass --resume or another --run_dir")

    ckpt_dir = Path(tc.checkpoint_dir)
    if save:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(cfg.to_yaml())
    ensemble = Ensemble(family, cfg, members, stats, device)
    best_path = ckpt_dir / f"{cfg.family}_best.pt"
    last_path = ckpt_dir / f"{cfg.family}_last.pt"
    train_x = torch.from_numpy(data.train)
    val_x = torch.from_numpy(np.ascontiguousarray(val))

    def payload(epoch_done: int) -> dict:
        return {
            "family": cfg.family,
            "config": cfg.to_dict(),
            "alphabet": "ACGT",
            "members": [nets.state_dict() for nets in members],
            "optimizers": [{k: o.state_dict() for k, o in od.items()} for od in opts],
            "schedulers": [{k: s.state_dict() for k, s in sd.items()} for sd in scheds],
            "epoch": epoch_done,
            "step": step,
            "best_score": best,
            "epochs_since_best": since_best,
            "rng": _rng_state(shuffle_gen, fam_gen),
            "stats": {"seq_len": stats.seq_len, "base_freq": list(stats.base_freq), "gc": stats.gc,
                      "gc_percentiles": list(stats.gc_percentiles),
                      "target_gc": float(target_gc), "source": data.source, "kind": stats.kind},
            "run_dir": str(run_dir),
        }

    out_of_time = False
    epoch = start_epoch
    # Seconds kept back from train.time_budget for the family's closing fit, estimated from the last
    # epoch's training throughput (a forward pass alone is faster, so this errs on the safe side).
    finish_n = min(family.finish_windows(cfg), n_train) + min(4096, val.shape[0])
    finish_n = finish_n * len(members) if family.finish_windows(cfg) else 0
    reserve = 0.0
    bar = tqdm(range(start_epoch, n_epochs), desc=f"{cfg.family} epochs", disable=None, leave=False)
    for epoch in bar:
        length = curriculum.length(epoch) if curriculum else data.seq_len
        bw = curriculum.balance_weight(epoch) if curriculum else tc.balance_weight
        temp = schedule.temperature(epoch) if (curriculum or tc.anneal_temperature) else tc.temperature
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        t_epoch = time.time()
        n_seen = 0
        for m, nets in enumerate(members):
            nets.train()
            ctx = StepContext(epoch=epoch, length=length, balance_weight=bw, temperature=temp,
                              target_gc=float(target_gc), ref_freq=stats.base_freq, device=device,
                              generator=fam_gen, cfg=cfg, optimizers=opts[m], step=step, val=val_x,
                              train=train_x)
            family.on_epoch_start(nets, ctx)
            idx = torch.from_numpy(boots[m])[torch.randperm(n_train, generator=shuffle_gen)]
            n_batches = math.ceil(n_train / tc.batch)
            if tc.steps_per_epoch:
                n_batches = min(n_batches, tc.steps_per_epoch)
            n_batches = family.epoch_steps(cfg, epoch, n_batches)
            for b in tqdm(range(n_batches), desc=f"epoch {epoch + 1} member {m + 1}", disable=None,
                          leave=False):
                batch = train_x[idx[b * tc.batch : (b + 1) * tc.batch], :length].to(device)
                batch = batch.float() if signal else batch.long()
                ctx.step = step
                for k, v in family.train_step(nets, batch, ctx).items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                    counts[k] = counts.get(k, 0) + 1
                step += 1
                n_seen += batch.shape[0]
                if tc.time_budget and time.time() - t0 > tc.time_budget - reserve:
                    out_of_time = True
                    break
            with warnings.catch_warnings():
                # a group that has not stepped yet (e.g. D during MLE warm-up) still decays
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                for s in scheds[m].values():
                    s.step()
            for k, v in family.epoch_metrics(nets, ctx).items():
                sums[k] = sums.get(k, 0.0) + float(v)
                counts[k] = counts.get(k, 0) + 1
            if out_of_time:
                break
        train_seconds = time.time() - t_epoch
        # Monitoring: a sample from the ensemble, judged against the validation windows.
        sample = ensemble.sample(tc.eval_samples, data.seq_len, temperature=1.0,
                                 seed=tc.seed * 100_003 + epoch).numpy()
        for nets in members:
            nets.train()
        row = {"epoch": epoch + 1, "length": length, "balance_weight": bw, "temperature": temp}
        row.update({k: sums[k] / counts[k] for k in sums})
        for name, o in opts[0].items():
            row[f"lr_{name}"] = o.param_groups[0]["lr"]
        if signal:
            mon = _monitor_signals(sample, val, epoch)
        else:
            mon = _monitor_dna(sample, val, epoch)
        score = mon["val_score"]
        row.update(mon)
        row.update({"seqs_per_s": n_seen / max(train_seconds, 1e-9), "elapsed_s": time.time() - t0})
        history.append(row)
        reserve = finish_n / max(row["seqs_per_s"], 1e-9)
        improved = score < best - 1e-12
        if improved:
            best, since_best = score, 0
        else:
            since_best += 1
        if save:
            _write_metrics(run_dir / "metrics.csv", history)
            p = payload(epoch + 1)
            if improved:
                ckpt_io.save(best_path, p)
            ckpt_io.save(last_path, p)
            if tc.save_every and (epoch + 1) % tc.save_every == 0:
                ckpt_io.save(ckpt_dir / f"{cfg.family}_epoch{epoch + 1}.pt", p)
            if tc.sample_every and (epoch + 1) % tc.sample_every == 0:
                if signal:
                    write_samples(run_dir / "sequences" / f"epoch{epoch + 1}.txt", sample)
                else:
                    write_fasta(run_dir / "sequences" / f"epoch{epoch + 1}.fasta", decode(sample),
                                model=cfg.family, prefix=f"epoch{epoch + 1}")
        family.on_epoch_end(members[0], ctx, run_dir if save else None, sample)
        lrs = " ".join(f"{k}={row[k]:.2e}" for k in row if k.startswith("lr_"))
        losses = " ".join(f"{k}={row[k]:.4f}" for k in sums)
        if signal:
            watch = "KS=%.3f W1=%.3f acf_mae=%.3f unique=%.3f" % (
                row["ks"], row["wasserstein"], row["acf_mae"], row["unique_fraction"])
        else:
            watch = "GC=%.3f (val %.3f) unique=%.3f JS4=%.4f" % (
                row["sample_gc"], row["val_gc"], row["unique_fraction"], row["val_js_4mer"])
        log.info("epoch %d/%d len=%d %s %s %s score=%.4f", epoch + 1, n_epochs, length, losses, lrs, watch, score)
        if tc.early_stopping and since_best >= tc.patience:
            log.info("early stopping: no validation improvement for %d epochs (best %.4f)", since_best, best)
            break
        if out_of_time:
            log.info("time budget of %.0f s reached after epoch %d", tc.time_budget, epoch + 1)
            break
    epochs_done = history[-1]["epoch"] if history else start_epoch
    if finish_n and len(history) and history[-1]["epoch"] > start_epoch:
        _finish(family, members, ctx, train_x, boots, history, save and {
            "last": last_path, "best": best_path if since_best == 0 else None,
            "epoch": ckpt_dir / f"{cfg.family}_epoch{epochs_done}.pt"
            if tc.save_every and epochs_done % tc.save_every == 0 else None,
            "payload": lambda: payload(epochs_done), "metrics": run_dir / "metrics.csv"})
    if save and history:
        from analysis.plots import training_curves, training_dynamics

        training_curves(history, run_dir / "training_curves.png", title=f"{cfg.family} training")
        if any("d_loss" in r for r in history) and not signal:
            training_dynamics(history, run_dir / "training_dynamics.png", title=f"{cfg.family} training dynamics")
        for p in family.on_train_end(ensemble, run_dir):
            log.info("wrote %s", p)
    return TrainResult(ensemble, history, run_dir, best_path if save else None,
                       last_path if save else None, int(epochs_done), time.time() - t0)
