"""The one training engine. It knows the Family interface, never a family's name.

`train(cfg)` builds a `Run` and calls its steps in order: build optimisers, restore (resume or
fine-tune), then per epoch: run the epoch, monitor, save, decide whether to stop; then the closing
fit and the figures. The run owns time, devices, randomness and files; families own their
networks, losses and phase plans (minGPT's split).
"""
from __future__ import annotations

import csv
import logging
import math
import os
import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from models.registry import DataStats, Family, get_family
from train import checkpoint as ckpt_io
from train.curriculum import from_config as curriculum_from_config
from train.distributed import Dist
from train.distributed import describe as describe_error
from train.distributed import setup as dist_setup
from train.averaging import WeightAverage
from train.gan import adversarial_now
from train.judging import EpochJudge, describe as describe_judge
from train.schedule import Cursor
from utils import config as C
from utils import modality as modalities
from utils import __version__, cli
from utils.errors import CheckpointError, ConfigError, DnaganError, TrainingError
from utils.outputs import check_writable, remove_orphans
from utils.sequences import atomic_write_text

log = logging.getLogger("dnagan")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


AMP_MODES = ("auto", "bf16", "fp16", "off")
# --amp auto turns bf16 on for windows at least this long. One H200, batch 256 (docs/benchmarks.md
# "GPU"): at 70 bp bf16 was slower than float32 for every family (0.78-0.85x: the step is bound by
# kernel launches, and autocast adds casts); at 500 bp faster (stacked 1.50x, gumbel 1.21x) with
# half the memory. Between the two lengths nothing was measured: 256 is the middle, in octaves.
AUTO_BF16_MIN_LEN = 256


def resolve_amp(name: str, device: torch.device, seq_len: int) -> torch.dtype | None:
    """The autocast dtype of --amp (None: full precision). auto: bf16 on a CUDA device that has it
    for windows of AUTO_BF16_MIN_LEN bases or more, else off (on a CPU, bf16 autocast is slower than
    float32 for these small networks; so it is on a GPU at short lengths)."""
    if name not in AMP_MODES:
        raise ConfigError(f"--amp must be one of {', '.join(AMP_MODES)}, got {name!r}")
    if name == "auto":
        long_enough = seq_len >= AUTO_BF16_MIN_LEN
        return torch.bfloat16 if device.type == "cuda" and long_enough and torch.cuda.is_bf16_supported() else None
    if name == "fp16" and device.type != "cuda":
        # oneDNN has no float16 LSTM (gumbel, seqgan fail) and float16 on a CPU is no faster
        raise ConfigError("--amp fp16 is for CUDA devices; on a CPU use --amp bf16 or off")
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[name]


def label_shares(counts: np.ndarray, balance: float) -> np.ndarray:
    """Each label's share of a training pass under train.label_balance: proportional to
    count^(1 - balance) (0: the data's shares; 1: equal)."""
    weight = np.asarray(counts, dtype=float) ** (1.0 - balance)
    return weight / weight.sum()


def balanced_pass(boots: torch.Tensor, labels: torch.Tensor, balance: float, generator) -> torch.Tensor:
    """One shuffled pass of len(boots) window indices (from boots) in which label l takes a share
    proportional to n_l^(1 - balance), n_l its windows in boots: balance 0 keeps the data's shares,
    1 gives every label the same. A label drawn less often than it has windows gets a random subset
    without repeats; one drawn more often goes through all its windows, reshuffled, before any repeats."""
    y = labels[boots]
    n = boots.numel()
    names, counts = torch.unique(y, return_counts=True)
    take = torch.floor(torch.from_numpy(label_shares(counts.numpy(), balance)) * n).long()
    take[torch.argmax(counts)] += n - int(take.sum())  # rounding: the largest label absorbs it
    parts = []
    for name, have, k in zip(names.tolist(), counts.tolist(), take.tolist()):
        mine = boots[y == name]
        rounds = -(-k // have)
        order = torch.cat([torch.randperm(have, generator=generator) for _ in range(rounds)])[:k]
        parts.append(mine[order])
    out = torch.cat(parts)
    return out[torch.randperm(n, generator=generator)]


COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")  # Inductor replays CUDA graphs in these


def _cloning(call):
    """A compiled module call whose tensor outputs are copied out of the CUDA graph's static buffers.
    Under CUDA graphs a module's outputs live in memory its next replay overwrites, and the families
    call one network several times before a backward (D on real, then on fake windows; stacked's stage
    bodies once per stage): on an H200 stacked with --compile reduce-overhead failed with "accessing
    tensor output of CUDAGraphs that has been overwritten by a subsequent run". PyTorch's remedy is
    to clone the output outside torch.compile, which this does (a copy of one activation per call)."""

    def run(*args, **kwargs):
        return torch.utils._pytree.tree_map_only(torch.Tensor, torch.Tensor.clone, call(*args, **kwargs))

    return run


def compile_networks(members: list, mode: str) -> int:
    """torch.compile, in place (``nn.Module.compile``), the forward of every module of this project's
    networks that defines one: the networks the engine calls (discriminators, ...) and the blocks
    inside generators that are driven through other methods (stacked's ``coarse``/``refine``,
    samplers' steps), so a compiled region covers each transformer, LSTM or CNN body. State_dict keys,
    checkpoints and the averaged copies are unchanged. Returns the number of modules compiled."""
    if mode not in COMPILE_MODES:
        raise ConfigError(f"train.compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    if mode == "off":
        return 0
    n = 0
    for nets in members:
        for net in nets.values():
            for m in net.modules():
                own = type(m).forward is not torch.nn.Module.forward and type(m).__module__.startswith("models.")
                if own:
                    m.compile(mode=None if mode == "default" else mode)
                    if mode in CUDAGRAPH_MODES:  # nn.Module.__call__ dispatches to this attribute once compiled
                        m._compiled_call_impl = _cloning(m._compiled_call_impl)
                    n += 1
    return n


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process so far: allocated on the GPU, else resident on the host."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource
    import sys

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 2**20 if sys.platform == "darwin" else kb / 1024


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # torch.use_deterministic_algorithms(True, warn_only=True) also imports TorchInductor's config
    # to set its flag (1.5 s of every start; nothing here compiles): the same switch without it,
    # unless Inductor is already loaded
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        setter(True, warn_only=True)


PRICE_WINDOWS = 256  # held-out windows of the pass that prices the closing fit before the first epoch
FIT_MARGIN = 1.2  # the closing fit's price, measured from its parts, times this (their timings vary)


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
    step: int = 0  # this member's step count (each bagged member counts its own)
    val: torch.Tensor | None = None  # held-out windows (CPU), for evaluate and closing fits
    train: torch.Tensor | None = None  # training windows (CPU), for families that draw extra batches
    phase: str = "train"  # the plan's phase of this epoch
    phase_start: bool = False  # the first epoch of that phase
    adversarial: bool | None = None  # the engine's per-epoch Family.adversarial_now (None: families decide per step)
    batch_labels: torch.Tensor | None = None  # (B,) label indices of the step's windows (labelled data)
    val_labels: torch.Tensor | None = None  # (V,) label indices of ctx.val's windows (labelled data)
    train_labels: torch.Tensor | None = None  # label indices of ctx.train's windows (labelled data)
    budget_used: float | None = None  # fraction of --budget spent (None without one), for time-based schedules
    dist: Dist = field(default_factory=Dist)  # this process's place under torchrun (world 1: alone)
    scalers: dict = field(default_factory=dict)  # per optimiser group: a GradScaler under --amp fp16
    deadline: float | None = None  # a closing fit's time.time() to be done by, under --budget (None: no limit)

    def optimize(self, name: str, loss: torch.Tensor) -> torch.Tensor:
        """zero_grad, backward, gradients averaged over the torchrun ranks, clip (train.clip_norm),
        step for one optimiser group; returns the gradient norm before clipping (a tensor on the
        device: reading it is the caller's choice, not a synchronisation in every step)."""
        opt = self.optimizers[name]
        scaler = self.scalers.get(name)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, enabled=False):  # backward outside autocast
            (scaler.scale(loss) if scaler is not None else loss).backward()
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        self.dist.average_grads(params)
        if scaler is not None:
            scaler.unscale_(opt)
        clip = self.cfg.train.clip_norm
        norm = nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
        if scaler is not None:
            scaler.step(opt)  # skipped when the (rank-averaged) gradients overflowed
            scaler.update()
        else:
            opt.step()
        return norm.detach()


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
               prompt: torch.Tensor | None = None, gc: float | None = None, label: str | None = None,
               guidance: float | None = None, gc_tilt: float = 0.0) -> torch.Tensor:
        """(n, length) codes; sequence i comes from member i mod K (members drawn in turn).
        ``gc`` asks a conditional family for sequences of that GC content; ``label`` one of the
        training labels (stats.label_names) for a family trained on labels; ``guidance`` the
        classifier-free guidance weight of a family that has it (1: the conditional model);
        ``gc_tilt`` a logit offset on C and G at every base (models.blocks.gc_bias; calibrate_gc
        finds the one that meets ``gc`` on average)."""
        length = length or self.stats.seq_len
        extra = {}
        if label is not None:
            extra["label"] = self.label_index(label)
        if gc is not None:
            if not self.family.conditional:
                raise ConfigError(f"--gc: the {self.family.name!r} family does not generate to a requested GC")
            extra["gc"] = float(gc)
        if guidance is not None:
            if not getattr(self.family, "guided", False):
                raise ConfigError(f"--guidance: the {self.family.name!r} family has no classifier-free guidance "
                                  "(stacked, gumbel, seqgan and masked have)")
            if float(guidance) != 1.0:
                if "classes" not in self.members[0]:
                    raise ConfigError("--guidance: this checkpoint was trained without labels or --condition gc")
                if getattr(self.cfg.model, "label_drop", 0.0) <= 0:
                    raise ConfigError("--guidance: this checkpoint was trained with model.label_drop 0, so it has no "
                                      "unconditional model to guide against")
                extra["guidance"] = float(guidance)
        if gc_tilt:
            if not self.family.conditional:
                raise ConfigError(f"--gc: the {self.family.name!r} family does not generate to a requested GC")
            extra["gc_tilt"] = float(gc_tilt)
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

    def label_guidance(self) -> float | None:
        """The classifier-free guidance W its config chose for --label (gen.guidance) when the model
        can be guided: trained on labels, with a null class (model.label_drop > 0); None (the
        conditional model) when it cannot or the config says 1."""
        w = self.cfg.gen.guidance
        if (w == 1.0 or not self.stats.label_names or not getattr(self.family, "guided", False)
                or "classes" not in self.members[0] or getattr(self.cfg.model, "label_drop", 0.0) <= 0):
            return None
        return w

    def label_index(self, label: str) -> int:
        """The index of a training label; a one-line error for a model without labels or an unknown one."""
        names = self.stats.label_names
        if not names:
            raise ConfigError("--label: this checkpoint was trained without labels")
        if not self.family.labelled:
            raise ConfigError(f"--label: the {self.family.name!r} family does not train on labels yet")
        if label not in names:
            raise ConfigError(f"--label {label}: unknown label (known: {', '.join(names)})")
        return names.index(label)

    def calibrate_gc(self, gc: float, length: int | None = None, *, n: int = 512, seed: int = 0, tol: float = 0.002,
                     max_draws: int = 14, **kw) -> tuple[float, float, int]:
        """The GC tilt (gc_tilt of sample) whose samples have mean GC ``gc``: pilot batches of ``n``
        drawn with one seed (common random numbers, so their mean GC grows with the tilt almost
        monotonically), bracketed by doubling steps, then narrowed by interpolation and bisection
        until the pilot mean is within ``tol``. A class trained on GC bins starts near the bin; the
        tilt takes its mean to the asked value. kw: sample's other arguments (temperature, prompt,
        label, guidance). Returns (tilt, the pilot mean GC at it, pilot batches drawn)."""
        def mean_gc(t):
            x = self.sample(n, length, seed=seed, gc=gc, gc_tilt=t, **kw)
            return float(((x == 1) | (x == 2)).float().mean())

        lo, f_lo = 0.0, mean_gc(0.0)
        draws, best = 1, (abs(f_lo - gc), 0.0, f_lo)
        if best[0] <= tol:
            return 0.0, f_lo, draws
        sign = 1.0 if gc > f_lo else -1.0
        hi, f_hi, step = None, None, 0.25
        while best[0] > tol and draws < max_draws and (hi is not None or step <= 8.0):
            if hi is None:  # bracketing: doubling steps until a tilt goes past the target
                t, step = sign * step, step * 2
            else:  # interpolation between the bracket's ends, kept off them (bisection-safe)
                t = lo + (gc - f_lo) * (hi - lo) / (f_hi - f_lo) if f_hi != f_lo else (lo + hi) / 2
                a, b = sorted((lo, hi))
                t = min(max(t, a + 0.1 * (b - a)), b - 0.1 * (b - a))
            f = mean_gc(t)
            draws += 1
            best = min(best, (abs(f - gc), t, f))
            if (f - gc) * sign >= 0:
                hi, f_hi = t, f
            else:
                lo, f_lo = t, f
        return best[1], best[2], draws


def stats_from_checkpoint(s: dict) -> DataStats:
    return DataStats(seq_len=int(s["seq_len"]), base_freq=tuple(s["base_freq"]), gc=float(s["gc"]),
                     gc_percentiles=tuple(s.get("gc_percentiles", ())), kind=s.get("kind", "dna"),
                     label_names=tuple(s.get("label_names", ())), label_freq=tuple(s.get("label_freq", ())),
                     label_gc_percentiles=tuple(tuple(p) for p in s.get("label_gc_percentiles", ())))


def load_ensemble(path, device: str = "auto") -> tuple[Ensemble, dict]:
    """Rebuild an ensemble from a checkpoint: no flags needed beyond the path."""
    dev = resolve_device(device)
    ck = ckpt_io.load(path, map_location=dev)
    family = get_family(ck["family"])
    try:
        cfg = C.from_dict(ck["config"], family.Config)
    except DnaganError as exc:
        raise CheckpointError(f"{path}: stored config does not fit this version ({exc})") from None
    stats = stats_from_checkpoint(ck["stats"])
    members = [family.build(cfg, stats).to(dev) for _ in ck["members"]]
    for nets, sd in zip(members, ck["members"]):
        load_weights(nets, sd, path)
    return Ensemble(family, cfg, members, stats, dev), ck


def load_weights(nets: nn.Module, state: dict, path) -> None:
    try:
        nets.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the config ({str(exc)[:160]})") from None


@dataclass
class TrainResult:
    ensemble: Ensemble
    history: list
    run_dir: Path
    best_path: Path | None
    last_path: Path | None
    epochs_done: int
    seconds: float
    main: bool = True  # False on the other ranks of a torchrun job (they wrote nothing)


class Meter:
    """Running means of a step's figures over an epoch. Tensors are summed where they are (on the
    device) and read once, when the means are asked for: no host-device synchronisation per step."""

    def __init__(self):
        self.sums: dict = {}
        self.counts: dict[str, int] = {}

    def add(self, figures: dict) -> None:
        for k, v in figures.items():
            v = v.detach().double() if torch.is_tensor(v) else float(v)
            self.sums[k] = self.sums[k] + v if k in self.sums else v
            self.counts[k] = self.counts.get(k, 0) + 1

    def finite(self, keys=lambda k: "loss" in k) -> str | None:
        """The first figure named by ``keys`` whose sum is NaN or infinite (one read for all), or None."""
        names = [k for k in self.sums if keys(k)]
        if not names:
            return None
        dev = next((v.device for v in self.sums.values() if torch.is_tensor(v)), torch.device("cpu"))
        vals = torch.stack([torch.as_tensor(self.sums[k], dtype=torch.float64, device=dev) for k in names])
        bad = (~torch.isfinite(vals)).cpu().nonzero()  # the one read
        return names[int(bad[0])] if len(bad) else None

    def means(self) -> dict:
        return {k: float(self.sums[k]) / self.counts[k] for k in self.sums}


def write_metrics(path: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def read_metrics(path: Path) -> list[dict]:
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


# Settings a resumed run takes from the command line; every other given setting must match the
# checkpoint's (a resumed run continues exactly; --init_checkpoint starts a new run from weights).
APPLIED_ON_RESUME = {("train", "epochs"), ("train", "time_budget"), ("train", "device"), ("train", "save_every"),
                     ("train", "sample_every"), ("train", "early_stopping"), ("train", "patience"),
                     ("train", "amp"), ("train", "sync_every")}


def _same_setting(section: str, key: str, old, new) -> bool:
    if isinstance(old, (list, tuple)) != isinstance(new, (list, tuple)):
        return False
    if (section, key) == ("data", "path") and not isinstance(old, (list, tuple)):
        try:
            return os.path.samefile(old, new)
        except OSError:
            return str(old) == str(new)
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return len(old) == len(new) and all(_same_setting(section, key, a, b) for a, b in zip(old, new))
    if isinstance(old, float) or isinstance(new, float):
        try:
            return math.isclose(float(old), float(new), rel_tol=1e-12, abs_tol=0.0)
        except (TypeError, ValueError):
            return False
    return old == new


def resumed_config(cfg: C.RunConfig, ck: dict, path, given: dict | None = None) -> C.RunConfig:
    """Resume continues the stored run exactly: the stored config, with the settings of
    APPLIED_ON_RESUME taken from the command line. ``given`` ({(section, key): (how it was given,
    value)}) are the settings the user gave; one that differs from the stored run's is an error
    naming it, never silently ignored."""
    if ck["family"] != cfg.family:
        raise CheckpointError(f"{path}: checkpoint is a {ck['family']!r} run, not {cfg.family!r}")
    stored = C.from_dict(ck["config"], get_family(cfg.family).Config)
    stored_d = stored.to_dict()
    for (section, key), (label, value) in (given or {}).items():
        if (section, key) in APPLIED_ON_RESUME:
            continue
        old = stored_d.get(section, {}).get(key)
        if not _same_setting(section, key, old, value):
            allowed = ", ".join(sorted(f"{s}.{k}" for s, k in APPLIED_ON_RESUME))
            raise ConfigError(f"{label} differs from the run being resumed ({section}.{key} = {old!r} in {path}): "
                              f"--resume continues that run exactly and changes only {allowed}; "
                              f"use --init_checkpoint {path} to start a new run from its weights")
    tc = cfg.train
    changes = {k: getattr(tc, k) for s, k in APPLIED_ON_RESUME if s == "train"}
    return C.replace(stored, train=changes)


def with_gc_term(cfg: C.RunConfig) -> C.RunConfig:
    """--target_gc asks for a pull toward that GC; a family whose default weight is 0 gets one."""
    tc = cfg.train
    if tc.target_gc is None or tc.balance_weight != 0 or tc.target_gc_weight <= 0:
        return cfg
    log.info("--target_gc %.3f: GC-balanced term at weight %.3g (train.target_gc_weight)",
             tc.target_gc, tc.target_gc_weight)
    return C.replace(cfg, train={"balance_weight": tc.target_gc_weight})


class Run:
    """One training run: its data, members, optimisers, clocks and files."""

    def __init__(self, cfg: C.RunConfig, *, resume: str | None = None, init_checkpoint: str | None = None,
                 data=None, save: bool = True, given: dict | None = None, overwrite: bool = False):
        self.t0 = time.time()
        self.family = get_family(cfg.family)
        self.dist, self.device = dist_setup(resolve_device(cfg.train.device))
        with self.dist.together():  # an error on any rank ends every rank with its message
            self._setup(cfg, resume, init_checkpoint, data, save, given, overwrite)

    def _setup(self, cfg, resume, init_checkpoint, data, save, given, overwrite) -> None:
        dist = self.dist
        self.resume_path, self.init_path, self.saving = resume, init_checkpoint, save and dist.main
        self.resume_ck = ckpt_io.load(resume, map_location=self.device) if resume else None
        if self.resume_ck is not None:
            cfg = resumed_config(cfg, self.resume_ck, resume, given)
        self.cfg = cfg = with_gc_term(cfg)
        tc = cfg.train
        self.run_dir = Path(tc.run_dir) if tc.run_dir else Path("runs") / f"{cfg.family}_{time.strftime('%Y%m%d-%H%M%S')}"
        if self.resume_ck is not None and self.resume_ck.get("run_dir"):
            self.run_dir = Path(self.resume_ck["run_dir"])
        ck_dir = Path(tc.checkpoint_dir)
        self.best_path, self.last_path = ck_dir / f"{cfg.family}_best.pt", ck_dir / f"{cfg.family}_last.pt"
        self.mle_path = ck_dir / f"{cfg.family}_mle.pt"  # the state before the first adversarial epoch
        self.adversarial = False  # whether an epoch of this run has let G take adversarial steps
        self.overwrite = overwrite
        if self.saving:
            self.preflight(overwrite)
        seed_everything(tc.seed)  # the same on every rank: identical initial weights (broadcast too)
        if data is None:
            self.modality, data = modalities.load(cfg.data, tc.seed)
        else:
            self.modality = modalities.of(data.kind)
        self.data = data
        self._check_data()
        self.stats = self.modality.stats(data)
        if self.resume_ck is None:  # a resumed run keeps its networks; a fine-tuned one adapts as its source did
            self.cfg, note = self.family.fit_to_data(cfg, int(data.train.size))
            cfg = self.cfg
            if note:
                log.info("%s", note)
        self.target_gc = self.modality.target_gc(tc.target_gc, data)
        self.plan = self.family.plan(cfg)
        self.cursor = Cursor(self.plan)
        self.n_epochs = tc.epochs or self.plan.epochs
        if self.n_epochs < 1:
            raise ConfigError("train.epochs must be >= 1 (0 means the family's phase plan, and this one has none)")
        k = tc.n_models if (tc.bagging or tc.n_models > 1) else 1
        if k < 1:
            raise ConfigError(f"--n_models must be >= 1, got {k}")
        self.members = [self.family.build(cfg, self.stats).to(self.device) for _ in range(k)]
        # train.ema: an averaged copy of each member's weights is validated, saved and sampled
        # (train/averaging.py); self.delivered is what checkpoints carry and generation uses
        self.averages = [WeightAverage(nets, tc.ema) for nets in self.members] if tc.ema else []
        self.delivered = [a.module for a in self.averages] or self.members
        self.ensemble = Ensemble(self.family, cfg, self.delivered, self.stats, self.device)
        self.amp = resolve_amp(tc.amp, self.device, cfg.data.seq_len)
        if self.device.type == "cuda" or self.amp is not None:
            precision = {None: "off (float32)", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp]
            log.info(f"device {self.device}, mixed precision {precision} (--amp {tc.amp})")
        if n_compiled := compile_networks(self.members, tc.compile):
            log.info(f"torch.compile ({tc.compile}): {n_compiled} module(s); the first steps of each shape compile")
        self._tensors(data)
        n = data.train.shape[0]
        boot_rng = np.random.default_rng(tc.seed + 7919)
        self.boots = [boot_rng.integers(0, n, n) if tc.bagging else np.arange(n) for _ in self.members]
        # one permutation for all ranks (each takes its own rows of every global batch); the
        # families' noise and rollouts differ between ranks
        self.shuffle_gen = torch.Generator().manual_seed(tc.seed + 1)
        self.fam_gen = torch.Generator(device=self.device).manual_seed(tc.seed + 2 + 7919 * dist.rank)
        self.curriculum = curriculum_from_config(tc, data.seq_len) if tc.curriculum else None
        self.temperatures = curriculum_from_config(tc, data.seq_len)  # annealing without --curriculum
        self.closing = self.family.closing_fit(cfg)
        self.start_epoch, self.best, self.since_best = 0, math.inf, 0
        self.steps = [0] * k  # per member: bagged members keep their own warm-up and adv_every timing
        self.history: list[dict] = []
        # the judge of analyze in the per-epoch monitor, where affordable (rank 0 monitors)
        self.judge = EpochJudge.build(tc.monitor_c2st, data, self.modality.kind, tc.seed, self.device) \
            if dist.main else None
        self._clock_state()
        if dist.on:
            log.info("torchrun: %d processes (%s); each rank takes --batch %d windows of every global batch of %d",
                     dist.world, "gloo" if self.device.type == "cpu" else "nccl", tc.batch, tc.batch * dist.world)
        self.data_sha256 = None if cfg.data.synthetic else ckpt_io.file_hash(cfg.data.path)

    def _clock_state(self) -> None:
        """The --budget clock's bookkeeping at the start of a run (a resumed run then reads its own)."""
        self.reserve = 0.0  # seconds kept back from the budget for the closing fit (and an epoch's tail)
        self.tail_s = 0.0  # seconds the last epoch spent after its steps: held-out passes and monitor
        self.epoch_start_used, self.epoch_share = None, 0.0  # the curriculum's projection of the last epoch
        self.full_from = None  # the first epoch trained at the full length (early stopping's count under a curriculum)
        self.eval_rate = 0.0  # held-out windows per second of the last epoch's evaluation (0: none yet)
        self.solver_s = 0.0  # the closing fit's solver seconds per training window it fits (measured)
        self.frozen_s = 0.0  # seconds per window of the closing fit's own frozen pass (measured; 0: not)
        self.out_of_time = False
        self.clock = 0.0  # under torchrun: rank 0's seconds since the start, as last shared
        self._since_sync = 0
        # the budget's look ahead: seconds per training step as last measured (under torchrun from rank
        # 0's shared clock, so every rank predicts the same), and the (clock, ticks) it is measured from
        self.step_s, self._ticks, self._step_ref = 0.0, 0, None

    def _tensors(self, data) -> None:
        """The windows (and labels) as tensors: training ones on the GPU when they fit a quarter of
        it; the held-out ones (the training ones when nothing is held out) for validation."""
        self.train_x = torch.from_numpy(data.train)
        labels = getattr(data, "train_labels", None)
        self.train_y = torch.from_numpy(labels.astype(np.int64)) if labels is not None else None
        if labels is not None and not self.family.labelled:
            log.warning("warning: the %r family does not train on labels yet; the labels are only counted",
                        self.family.name)
        if self.device.type == "cuda" and self.train_x.nbytes < 0.25 * torch.cuda.get_device_properties(
                self.device).total_memory:
            self.train_x = self.train_x.to(self.device)  # batches are sliced on the GPU: no copy per step
            self.train_y = self.train_y.to(self.device) if self.train_y is not None else None
        tc = self.cfg.train
        if not 0.0 <= tc.label_balance <= 1.0:
            raise ConfigError(f"train.label_balance must lie in [0, 1], got {tc.label_balance}")
        # the labels a pass is balanced on (a CPU copy: passes are drawn there), None when off
        balancing = labels is not None and tc.label_balance > 0 and self.family.labelled
        if balancing and not self.family.balances_labels:
            log.info("train.label_balance is ignored by %s: it counts every window once", self.family.name)
        self.balance_labels = (torch.from_numpy(labels.astype(np.int64))
                               if balancing and self.family.balances_labels else None)
        if self.balance_labels is not None:
            counts = np.bincount(labels, minlength=len(data.label_names)).astype(float)
            share = label_shares(counts, tc.label_balance)
            log.info("label balance %g: shares of every pass %s (of the windows: %s)", tc.label_balance,
                     ", ".join(f"{n} {s:.0%}" for n, s in zip(data.label_names, share)),
                     ", ".join(f"{c / counts.sum():.0%}" for c in counts))
        # what scores each epoch (validation NLL, best.pt, early stopping): the held-out blocks, or under
        # data.select_apart their selection half (the judged half is never read here)
        self.val, vl = data.selection
        self.val_x = torch.from_numpy(np.ascontiguousarray(self.val))
        self.val_y = None  # their labels, for families that train on labels
        if vl is not None:
            self.val_y = torch.from_numpy(vl.astype(np.int64))

    def preflight(self, overwrite: bool) -> None:
        """Before any data is read or anything written: the folders can be written, a killed run's
        temporaries are gone, and an earlier run's checkpoints are not replaced unless asked."""
        ck_dir = self.best_path.parent
        check_writable(ck_dir)
        check_writable(self.run_dir)
        for name in (self.best_path.name, self.last_path.name, self.mle_path.name, f"{self.cfg.family}_epoch*.pt"):
            for p in remove_orphans(ck_dir, ckpt_io.orphan_pattern(name)):
                log.info("removed %s, a temporary an interrupted run left behind", p)
        if self.resume_ck is not None:
            return
        if overwrite:  # the earlier run's likelihood snapshot is not this run's
            self.mle_path.unlink(missing_ok=True)
            return
        earlier = [p for p in (self.best_path, self.last_path) if p.exists()]
        if earlier:
            raise ConfigError(f"{earlier[0]} holds an earlier run's checkpoint; pass --overwrite to replace it, "
                              f"--checkpoint_dir DIR to keep both, or --resume {self.last_path} to continue it")

    def _check_data(self) -> None:
        d, kind = self.data, self.modality
        if kind.kind not in self.family.data_kinds:
            from models.registry import FAMILIES

            able = sorted(n for n, c in FAMILIES.items() if kind.kind in c.data_kinds)
            raise ConfigError(f"{d.source}: {kind.name} sequences; the {self.family.name!r} family models "
                              f"{' or '.join(modalities.of(k).name for k in self.family.data_kinds)} "
                              f"(use --model {' or '.join(able)})")
        if self.cfg.train.curriculum and not kind.windows:
            raise ConfigError(f"--curriculum grows DNA windows; it does not apply to {kind.name} sequences")
        if not d.val.shape[0]:
            log.warning("validation set is empty; the validation score uses training windows")
        if getattr(d, "select", None) is not None:
            log.info("%s: %d training %s sequences of length %d; held out, %d score each epoch and pick best.pt "
                     "(data.select_apart) and %d are left to judge", d.source, d.train.shape[0], kind.name,
                     d.seq_len, d.select.shape[0], d.val.shape[0])
        else:
            log.info("%s: %d training and %d held-out %s sequences of length %d", d.source, d.train.shape[0],
                     d.val.shape[0], kind.name, d.seq_len)
        counts = d.label_counts() if hasattr(d, "label_counts") else {}
        # windows per label, in every metrics row
        self.label_row = {f"windows_{name}": tr for name, (tr, _) in counts.items()}

    # ---- the steps
    def build_optimizers(self) -> None:
        tc = self.cfg.train
        self.opts, self.scheds, self.scalers = [], [], []
        for nets in self.members:
            o = {name: torch.optim.Adam(params, lr=lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)
                 for name, (params, lr) in self.family.optimizers(nets, self.cfg).items()}
            self.opts.append(o)
            self.scheds.append({k: torch.optim.lr_scheduler.ExponentialLR(v, gamma=tc.lr_gamma) for k, v in o.items()})
            # fp16 needs its loss scaled (bf16 has float32's range and does not)
            self.scalers.append({k: torch.amp.GradScaler(self.device.type) for k in o} if self.amp == torch.float16
                                else {})

    def start_together(self) -> None:
        """Under torchrun: every rank starts from rank 0's weights (as DDP's wrapper does), and its own
        stream of noise once a resumed run has restored rank 0's generator states."""
        if not self.dist.on:
            return
        for nets in self.members:
            self.dist.broadcast_module(nets)
        r = self.dist.rank
        if r:
            torch.manual_seed(self.cfg.train.seed + 1_000_003 * r + self.start_epoch)
            self.fam_gen.manual_seed(self.cfg.train.seed + 2 + 7919 * r + 104_729 * self.start_epoch)

    def restore(self) -> None:
        """Fine-tune from --init_checkpoint's weights, or continue --resume's run exactly."""
        if self.init_path:
            src, _ = load_ensemble(self.init_path, device=str(self.device))
            if src.family.name != self.family.name:
                raise CheckpointError(f"{self.init_path}: a {src.family.name!r} checkpoint cannot initialise "
                                      f"{self.family.name!r}")
            for i, nets in enumerate(self.members):
                load_weights(nets, src.members[i % len(src.members)].state_dict(), self.init_path)
                if self.closing:
                    self.closing.undo(nets)
        ck = self.resume_ck
        if ck is None:
            if self.saving and self.cfg.train.run_dir and (self.run_dir / "metrics.csv").exists() and not self.overwrite:
                raise ConfigError(f"{self.run_dir}: already holds a run; pass --resume, --overwrite or another --run_dir")
            return
        if bool(self.averages) != ("train_members" in ck):
            raise CheckpointError(f"{self.resume_path}: stored without the weight average train.ema asks for "
                                  "(or the other way round)")  # resumed_config keeps train.ema: a corrupt file
        for m, nets in enumerate(self.members):
            load_weights(nets, ck.get("train_members", ck["members"])[m], self.resume_path)
            if self.averages:
                self.averages[m].load(ck["members"][m], ck["ema_updates"][m])
            if self.closing:  # a finished run's closing fit is redone at the new end
                for net in [nets] + ([self.delivered[m]] if self.averages else []):
                    self.closing.undo(net)
        for o, s, osd, ssd in zip(self.opts, self.scheds, ck["optimizers"], ck["schedulers"]):
            for name in o:
                o[name].load_state_dict(osd[name])
                s[name].load_state_dict(ssd[name])
        for sc, stored in zip(self.scalers, ck.get("scalers") or [{} for _ in self.scalers]):
            for name in sc.keys() & stored.keys():
                sc[name].load_state_dict(stored[name])
        _set_rng_state(ck["rng"], self.shuffle_gen, self.fam_gen)
        self.start_epoch = int(ck["epoch"])
        self.best, self.since_best = float(ck["best_score"]), int(ck["epochs_since_best"])
        self.steps = [int(s) for s in ck["steps"]]
        self.adversarial = bool(ck.get("adversarial", True))  # older checkpoints: no snapshot now
        self.full_from = ck.get("full_length_from")
        self.cursor = Cursor(self.plan, *map(int, ck["plan_cursor"]))
        # --budget is for the whole run: the clock goes on from the interrupted run's (setting up this
        # process is not counted), and so does the time kept back for the closing fit
        self.t0 = time.time() - float(ck.get("elapsed_s", 0.0))  # older checkpoints: the clock restarts
        self.reserve = float(ck.get("reserve_s", 0.0))
        self.epoch_start_used = ck.get("epoch_start_used")  # older checkpoints: the first epoch uses its stage
        self.clock = time.time() - self.t0
        self.history = [r for r in read_metrics(self.run_dir / "metrics.csv") if r.get("epoch", 0) <= self.start_epoch]
        cli.resume_hint(f"python main.py --mode train --resume {self.resume_path}")
        log.info("resuming %s from epoch %d", self.resume_path, self.start_epoch)

    def budget_used(self) -> float | None:
        """Fraction of --budget spent, of the time left for training (the closing fit's reserve
        excluded); None without a budget."""
        tc = self.cfg.train
        return self.elapsed() / max(tc.time_budget - self.reserve, 1e-9) if tc.time_budget else None

    def elapsed(self) -> float:
        """Seconds since the start: this process's clock, or under torchrun rank 0's as last shared
        (every rank then takes the same time-based decisions at the same step)."""
        return self.clock if self.dist.on else time.time() - self.t0

    def context(self, m: int, epoch: int, phase_start: bool, used: float | None = None) -> StepContext:
        """Member m's context for this epoch; ``used``: the budget fraction at the epoch's start (every
        member of an epoch trains at the curriculum length it gives), read now when not given."""
        tc, cur = self.cfg.train, self.curriculum
        temp = self.temperatures.temperature(epoch) if (cur or tc.anneal_temperature) else tc.temperature
        used = self.budget_used() if used is None else used
        return StepContext(
            epoch=epoch, length=cur.length(epoch, used, self.epoch_share) if cur else self.data.seq_len,
            balance_weight=cur.balance_weight(epoch) if cur else tc.balance_weight, temperature=temp,
            target_gc=self.target_gc, ref_freq=self.stats.base_freq, device=self.device, generator=self.fam_gen,
            cfg=self.cfg, optimizers=self.opts[m], step=self.steps[m], val=self.val_x, train=self.train_x,
            val_labels=self.val_y, train_labels=self.train_y, phase=self.cursor.phase.name,
            phase_start=phase_start, budget_used=used, dist=self.dist, scalers=self.scalers[m])

    def run_epoch(self, epoch: int) -> tuple[dict, StepContext, int]:
        """Every member's batches of this epoch; returns the mean figures, the last context and the
        number of training sequences seen (by all ranks). Under torchrun every global batch of
        --batch x world windows is split between the ranks, rank r taking its rows r, r + world, ..."""
        tc, meter, seen = self.cfg.train, Meter(), 0
        self.tail_s = 0.0
        W, r = self.dist.world, self.dist.rank
        n_train = self.train_x.shape[0]
        gb = tc.batch * W
        # a pass is ceil(n / global batch) batches; under torchrun a last, short global batch with
        # fewer rows than ranks is left out (no rank gets an empty batch)
        if n_train < W:
            raise ConfigError(f"{n_train} training windows for {W} processes: use fewer processes or more data")
        per_pass = n_train // gb + int(n_train % gb >= W)
        used = self.budget_used()  # at the epoch's start: the same curriculum length for every member
        if used is not None:  # the budget share between the last two epoch starts (this process's)
            self.epoch_share = used - self.epoch_start_used if self.epoch_start_used is not None else 0.0
            self.epoch_start_used = used
        phase_start = self.cursor.start_epoch(used)
        n_batches = self.cursor.phase.steps or (min(per_pass, tc.steps_per_epoch) if tc.steps_per_epoch else per_pass)
        autocast = dict(device_type=self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None)
        graphs = self.cfg.train.compile in CUDAGRAPH_MODES and self.device.type == "cuda"
        self.snapshot_before_adversarial(self.context(0, epoch, phase_start, used))
        for m, nets in enumerate(self.members):
            nets.train()
            ctx = self.context(m, epoch, phase_start, used)
            ctx.adversarial = adversarial_now(self.family, self.cfg, ctx)
            self.family.on_epoch_start(nets, ctx)
            # one shuffled pass over the member's windows; a phase with more steps than batches in a
            # pass (seqgan's rounds on a small genome) goes on with freshly shuffled passes
            boots = torch.from_numpy(self.boots[m])

            def shuffled():
                if self.balance_labels is not None:
                    return balanced_pass(boots, self.balance_labels, tc.label_balance,
                                         self.shuffle_gen).to(self.train_x.device)
                return boots[torch.randperm(n_train, generator=self.shuffle_gen)].to(self.train_x.device)

            passes = [shuffled()]
            # a step's time is measured within an epoch's steps, not across its tail (under torchrun the
            # shared clock is as last read, before the tail: measured from the epoch's first read on)
            self._step_ref = None if self.dist.on else (self.elapsed(), self._ticks)
            for b in tqdm(range(n_batches), desc=f"epoch {epoch + 1} member {m + 1}",
                          disable=None if self.dist.main else True, leave=False):
                p, j = divmod(b, per_pass)
                if p == len(passes):
                    passes.append(shuffled())
                rows = passes[p][j * gb : (j + 1) * gb][r::W]
                batch = self.modality.batch(self.train_x[rows, : ctx.length].to(self.device))
                ctx.step, ctx.budget_used = self.steps[m], self.budget_used()
                ctx.batch_labels = self.train_y[rows].to(self.device) if self.train_y is not None else None
                if graphs:  # a new iteration: the previous step's graph outputs may be reused
                    torch.compiler.cudagraph_mark_step_begin()
                with torch.autocast(**autocast):
                    figures = self.family.train_step(nets, batch, ctx)
                if self.averages:
                    self.averages[m].update(nets)
                meter.add(figures)
                self.steps[m] += 1
                seen += batch.shape[0] * W
                if self.tick(meter, epoch, last=b + 1 == n_batches):
                    break
            self.end_member(m, nets, ctx, meter, epoch)
            if self.out_of_time:
                break
        self.cursor.end_epoch()
        return meter.means(), ctx, seen

    def end_member(self, m: int, nets, ctx: StepContext, meter: Meter, epoch: int) -> None:
        """After member m's steps of an epoch: the NaN check of steps not yet read, buffers summed
        over ranks, the average's buffers, the lr decay, and (rank 0) the held-out pass."""
        if self._since_sync:  # steps since the last read (a budget break between reads): read them
            self.check_finite(meter, epoch)
            self._since_sync = 0
        for name, buf in nets.named_buffers() if self.dist.on else ():
            if name.rsplit(".", 1)[-1] in self.family.summed_buffers:
                self.dist.sum_(buf)
        if self.averages:  # the buffers as they end the epoch (summed over ranks)
            self.averages[m].copy_buffers(nets)
        self.decay_lr(m)
        if self.dist.main:  # held-out figures are for rank 0's log and checkpoint choice only
            t = time.time()
            held_out = self.family.evaluate(self.delivered[m], ctx)
            # windows per second of a held-out pass at full length: what the closing fit costs
            # (the count is the engine's, not a figure for the log or metrics.csv)
            self.eval_rate = held_out.pop("val_passes", 0) / max(time.time() - t, 1e-9)
            self.tail_s += time.time() - t
            meter.add(held_out)

    def decay_lr(self, m: int) -> None:
        """After each epoch: ExponentialLR's step, or with train.lr_clock under --budget the rate the
        clock says, lr0 * gamma^(epochs x budget fraction spent): the decay that the epoch plan
        (train.epochs, or the family's plan) would reach by its end is reached when the budget ends,
        however many epochs fit (under torchrun the clock is rank 0's, so every rank sets the same)."""
        tc = self.cfg.train
        used = self.budget_used() if tc.lr_clock else None
        with warnings.catch_warnings():
            # a group that has not stepped yet (e.g. D during MLE warm-up) still decays
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            for s in self.scheds[m].values():
                s.step()
                if used is not None:
                    factor = tc.lr_gamma ** (self.n_epochs * min(used, 1.0))
                    for group, base in zip(s.optimizer.param_groups, s.base_lrs):
                        group["lr"] = base * factor

    def snapshot_before_adversarial(self, ctx: StepContext) -> None:
        """Before the first epoch in which the generator may take adversarial steps, the state so
        far (trained by likelihood alone, plus its discriminator) goes to <model>_mle.pt: the
        paired MLE row of an adversarial-vs-likelihood comparison from one run."""
        if self.adversarial or not adversarial_now(self.family, self.cfg, ctx):
            return
        if self.saving and self.history:
            with cli.critical():
                ckpt_io.save_all([self.mle_path], self.payload())  # says adversarial False: resumable as MLE
            log.info("epoch %d starts the adversarial part; the likelihood-only state is in %s",
                     ctx.epoch + 1, self.mle_path)
        self.adversarial = True

    def tick(self, meter: Meter, epoch: int, last: bool) -> bool:
        """After each step: every train.sync_every steps (and at the epoch's last) the step figures
        are read once for a NaN check; under torchrun that read is one all-reduce that also shares
        rank 0's clock. Returns whether --budget is spent (all ranks agree on it)."""
        tc = self.cfg.train
        self._since_sync += 1
        self._ticks += 1
        due = self._since_sync >= tc.sync_every or last
        if due:
            self._since_sync = 0
            self.check_finite(meter, epoch)
        if self.dist.on and not due:
            return False  # between reads the ranks go on: their decisions rest on the shared clock
        if not tc.time_budget:
            return False
        self.out_of_time = self.past_budget(measure=True)
        return self.out_of_time

    def past_budget(self, measure: bool = False) -> bool:
        """Whether the training time (--budget less the reserve) will be spent by the next decision
        point: one more step, or under torchrun the train.sync_every steps until the next shared read,
        at the last measured step time. (Before, the budget was read only after a step: seqgan's
        adversarial rounds at 1,000 bp take ~27 s each, and its --budget 900 run trained 973 s.) With
        ``measure`` (after a step) the step time is measured first, from the clock between decision
        points of one epoch's steps (rank 0's shared clock under torchrun, so every rank predicts the
        same); an epoch's first steps are priced at the last one measured."""
        tc = self.cfg.train
        now = self.elapsed()
        if measure:
            if self._step_ref is not None and self._ticks > self._step_ref[1]:
                self.step_s = (now - self._step_ref[0]) / (self._ticks - self._step_ref[1])
            self._step_ref = (now, self._ticks)
        return tc.time_budget - self.reserve - now < self.step_s * (tc.sync_every if self.dist.on else 1)

    def check_finite(self, meter: Meter, epoch: int) -> None:
        """A NaN or infinite loss ends the run (on every rank): the checkpoints of the last finished
        epoch stay."""
        key = meter.finite()
        if self.dist.on:
            bad, self.clock = self.dist.sync(key is not None, time.time() - self.t0, self.dist.device)
            if not bad:
                return
        elif key is None:
            return
        err = None
        if key is not None:
            kept = (f"the last good checkpoint is {self.last_path}" if self.last_path.exists()
                    else "no checkpoint was written yet")
            err = TrainingError(f"epoch {epoch + 1}: {key} is {float(meter.sums[key])}; training stopped and {kept} "
                                "(try a lower learning rate, e.g. --set train.lr_g=...)")
        self.dist.agree(err)

    def monitor(self, epoch: int, figures: dict, ctx: StepContext, seen: int, seconds: float):
        """A sample from the ensemble judged against the held-out windows; returns (row, sample)."""
        tc = self.cfg.train
        # at the epoch's length: under a curriculum, what the model was trained on so far (a masked
        # model samples in passes over every position: 1,000 bp in a 50 bp epoch cost minutes)
        n = min(tc.eval_samples, max(32, tc.eval_bases // ctx.length))  # bounded cost at length
        sample = self.ensemble.sample(n, ctx.length, temperature=1.0, seed=tc.seed * 100_003 + epoch).numpy()
        row = {"epoch": epoch + 1, "phase": ctx.phase, "length": ctx.length, "balance_weight": ctx.balance_weight,
               "temperature": ctx.temperature, **figures}
        row.update({f"lr_{k}": o.param_groups[0]["lr"] for k, o in self.opts[0].items()})
        row.update(self.modality.monitor(sample, self.val, epoch))
        if self.judge is not None:
            left = tc.time_budget - self.reserve - self.elapsed() if tc.time_budget else math.inf
            row.update(self.judge.row(sample, ctx.length, epoch, self.elapsed(), left))
        row.update({"seqs_per_s": seen / max(seconds, 1e-9), "elapsed_s": time.time() - self.t0,
                    "peak_memory_mb": peak_memory_mb(self.device), **self.label_row})
        self.history.append(row)
        lrs = " ".join(f"{k}={row[k]:.2e}" for k in row if k.startswith("lr_"))
        losses = " ".join(f"{k}={v:.4f}" for k, v in figures.items())
        log.info("epoch %d/%d %s len=%d %s %s %s%s score=%.4f %s=%.4f", epoch + 1, self.n_epochs, ctx.phase,
                 ctx.length, losses, lrs, self.modality.watch(row), describe_judge(row), row["val_score"],
                 self.family.select_by, self.selection_score(row))
        return row, sample

    def payload(self) -> dict:
        s, epoch = self.stats, self.history[-1]["epoch"] if self.history else self.start_epoch
        return {
            "family": self.cfg.family, "config": self.cfg.to_dict(), "alphabet": "ACGT",
            "members": [nets.state_dict() for nets in self.delivered],
            **({"train_members": [nets.state_dict() for nets in self.members],
                "ema_updates": [a.updates for a in self.averages]} if self.averages else {}),
            "optimizers": [{k: o.state_dict() for k, o in od.items()} for od in self.opts],
            "scalers": [{k: sc.state_dict() for k, sc in sd.items()} for sd in self.scalers],
            "schedulers": [{k: v.state_dict() for k, v in sd.items()} for sd in self.scheds],
            "epoch": epoch, "steps": list(self.steps), "plan_cursor": self.cursor.state(), "best_score": self.best,
            "adversarial": self.adversarial, "full_length_from": self.full_from,
            # the --budget clock: a resumed run goes on from here, so it ends when the uninterrupted one would
            "elapsed_s": time.time() - self.t0, "reserve_s": self.reserve,
            # the budget fraction at this epoch's start: the curriculum's projection of the next epoch reads it
            "epoch_start_used": self.epoch_start_used,
            "epochs_since_best": self.since_best, "rng": _rng_state(self.shuffle_gen, self.fam_gen),
            "stats": {"seq_len": s.seq_len, "base_freq": list(s.base_freq), "gc": s.gc,
                      "gc_percentiles": list(s.gc_percentiles), "target_gc": float(self.target_gc),
                      "source": self.data.source, "kind": s.kind,
                      "label_names": list(s.label_names), "label_freq": list(s.label_freq),
                      "label_gc_percentiles": [list(p) for p in s.label_gc_percentiles]},
            "run_dir": str(self.run_dir), "version": __version__, "data_sha256": self.data_sha256,
        }

    def checkpoint_paths(self, epoch: int, improved: bool) -> list[Path]:
        """Where the state after ``epoch`` (1-based) goes: last, best when it improved, epoch-N."""
        every = self.cfg.train.save_every
        paths = [self.last_path] + ([self.best_path] if improved else [])
        if every and epoch % every == 0:
            paths.append(self.best_path.with_name(f"{self.cfg.family}_epoch{epoch}.pt"))
        return paths

    def selection_score(self, row: dict) -> float:
        """The figure that picks <model>_best.pt (lower is better): the family's select_by (held-out
        NLL where it has a likelihood), else the monitor's sample score."""
        return float(row.get(self.family.select_by, row["val_score"]))

    def keep_time_back(self, row: dict) -> None:
        """Seconds kept back from --budget: the epoch's tail (what it spent after its steps stopped:
        held-out passes and the monitoring sample, which the last epoch runs after the budget's
        check too), plus the closing fit; twice the fit when the best checkpoint is an earlier
        epoch's, which gets its own fit. (Without the tail, masked's last epoch on S. suis at
        --budget 300 ended 12 s into the fit's time and its refit was cut after 10 of its 100
        iterations.) The fit is priced by fit_seconds at the faster of the epoch's held-out pass and
        its training steps (steps alone overstated it up to 7x where they are slow: stacked with
        adversarial steps at 500 bp kept 667 s of a 900-s budget back for a fit that took 92 s)."""
        seconds = 0.0
        if self.closing:
            seconds = self.fit_seconds(max(self.eval_rate, row["seqs_per_s"]))
        self.reserve = self.tail_s + seconds * (2 if self.since_best else 1)
        if self.cfg.train.time_budget:  # what the next epoch (or the finish) is planned around, for the log
            row.update(reserve_s=self.reserve, fit_priced_s=seconds)

    def fit_windows(self) -> tuple[int, int, int]:
        """(training windows the closing fit passes, held-out windows it scores, members)."""
        return min(self.closing.windows, self.train_x.shape[0]), min(4096, self.val.shape[0]), len(self.members)

    def fit_seconds(self, rate: float) -> float:
        """The closing fits' seconds: one forward pass over their windows and the held-out ones, at
        the slower of ``rate`` windows per second (a held-out pass's) and the fit's own frozen pass
        as its price measured it (frozen_s), plus the solver's measured seconds per window
        (solver_s), times FIT_MARGIN. (Before, 1.5 times the passes alone: the solver's time follows
        the rows it fits, not the network's speed, and masked's refit on S. suis took 64 s of the
        48 s kept for it. Then at the held-out rate alone: masked's frozen pass, 1.5x slower per
        window, took 27.7 s of the 18 s priced, and a last epoch ending 6 s late left its refit
        10 of its 100 iterations.)"""
        fit, val, m = self.fit_windows()
        per_window = max(1.0 / max(rate, 1e-9), self.frozen_s)
        return FIT_MARGIN * ((fit + val) * per_window + self.solver_s * fit) * m

    def price_closing_fit(self) -> None:
        """Under --budget, before the first epoch (of a fresh or a resumed run): the closing fit's
        solver and its own frozen pass, timed by the family's ClosingFit.price on PRICE_WINDOWS
        training windows, and on a fresh run the fit's reserve, with a held-out pass over
        PRICE_WINDOWS windows giving another rate of its forward passes (the first epoch's own pass
        re-prices it; the slower of the two is taken). Before, nothing was
        kept back until an epoch had ended, so a budget shorter than one epoch plus the fit
        overran by the whole fit. The random streams are left as they were."""
        if not (self.cfg.train.time_budget and self.closing):
            return
        fresh = not (self.history or self.start_epoch)
        out = {"reserve": self.reserve, "solver_s": 0.0, "frozen_s": 0.0}
        if self.dist.main:
            nets, n = self.delivered[0], min(PRICE_WINDOWS, self.val_x.shape[0])
            ctx, was, state = self.context(0, 0, True), nets.training, self.fam_gen.get_state()
            passes, seconds = 0, 0.0
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                if self.closing.price is not None:
                    k = min(PRICE_WINDOWS, self.train_x.shape[0])
                    per_window, per_row, out["frozen_s"] = self.closing.price(
                        nets, self.train_x[:k], None if self.train_y is None else self.train_y[:k], ctx)
                    out["solver_s"] = per_window * per_row
                for k in (min(8, n), n) if fresh else ():  # the first, short pass pays one-off set-up costs
                    ctx.val, ctx.val_labels = self.val_x[:k], None if self.val_y is None else self.val_y[:k]
                    t = time.time()
                    passes = self.family.evaluate(nets, ctx).get("val_passes", 0)
                    seconds = time.time() - t
            self.fam_gen.set_state(state)
            nets.train(was)
            self.solver_s, self.frozen_s = out["solver_s"], out["frozen_s"]
            if passes:
                out["reserve"] = self.fit_seconds(passes / max(seconds, 1e-9))
        shared = self.dist.share(out)
        self.reserve, self.solver_s, self.frozen_s = shared["reserve"], shared["solver_s"], shared["frozen_s"]
        if fresh and self.reserve:
            log.info("kept %.1f s of the %.0f s budget back for the closing fit (priced from a held-out pass, "
                     "its frozen pass's %.2f ms and its solver's %.2f ms per window)", self.reserve,
                     self.cfg.train.time_budget, 1e3 * self.frozen_s, 1e3 * self.solver_s)

    def save(self, epoch: int, row: dict, sample) -> bool:
        """Track the best score; write metrics, checkpoints and samples. Returns whether it improved."""
        score = self.selection_score(row)
        improved = score < self.best - 1e-12
        self.best, self.since_best = (score, 0) if improved else (self.best, self.since_best + 1)
        self.keep_time_back(row)
        if not self.saving:
            return improved
        with cli.critical():  # a signal waits until metrics and this epoch's checkpoints are all written
            write_metrics(self.run_dir / "metrics.csv", self.history)
            ckpt_io.save_all(self.checkpoint_paths(epoch + 1, improved), self.payload())
        cli.resume_hint(f"python main.py --mode train --resume {self.last_path}")
        every = self.cfg.train.sample_every
        if every and (epoch + 1) % every == 0:
            self.modality.write_epoch_sample(self.run_dir, epoch + 1, sample, self.cfg.family)
        self.family.artifacts(self.ensemble, self.run_dir, sample, epoch + 1)
        return improved

    def end_epoch(self, epoch: int, figures: dict, ctx: StepContext, seen: int, seconds: float) -> bool:
        """Rank 0 monitors, saves and decides whether to stop; under torchrun every rank then learns
        the decision, rank 0's clock and closing-fit reserve, or rank 0's error. Returns whether to stop."""
        out = {"stop": False, "error": None}
        if self.dist.main:
            try:
                t = time.time()
                row, sample = self.monitor(epoch, figures, ctx, seen, seconds)
                # the judge's seconds are the run's, not the tail kept back for the last epoch (it may skip it)
                self.tail_s += time.time() - t - row.get("judge_s", 0.0)
                for nets in self.members:
                    nets.train()
                if self.full_from is None and ctx.length >= self.data.seq_len:
                    self.full_from = epoch
                self.save(epoch, row, sample)
                out["stop"] = self.should_stop(epoch)
            except (DnaganError, OSError) as exc:
                if not self.dist.on:
                    raise
                out["error"] = describe_error(exc)
            out.update(reserve=self.reserve, clock=time.time() - self.t0)
        if not self.dist.on:
            return out["stop"]
        shared = self.dist.share(out)
        self.reserve, self.clock = shared["reserve"], shared["clock"]
        if shared["error"] is not None:
            self.dist.raise_described(shared["error"], 0)
        return bool(shared["stop"])

    def stalled(self, epoch: int) -> int:
        """Epochs without a better selection score, for early stopping; under a curriculum only those
        trained at the full length count (the held-out score is read at that length, and it may stall
        while the windows grow: seqgan's best at 500 bp was a 200 bp epoch)."""
        if self.curriculum is None:
            return self.since_best
        return 0 if self.full_from is None else min(self.since_best, epoch + 1 - self.full_from)

    def should_stop(self, epoch: int) -> bool:
        tc = self.cfg.train
        if tc.time_budget and not self.out_of_time:
            # read again after the held-out pass and monitor (before: only after training steps, so
            # a budget spent by them started one more epoch, stopped after one step and monitored it);
            # an epoch is not started when its first step would not fit either
            self.out_of_time = self.past_budget()
        if tc.early_stopping and self.stalled(epoch) >= tc.patience:
            log.info("early stopping: no validation improvement for %d epochs (best %.4f)%s", self.since_best, self.best,
                     f", counted from epoch {self.full_from + 1}, the first at the full length" if self.curriculum else "")
            return True
        if self.out_of_time:
            log.info("time budget of %.0f s reached after epoch %d", tc.time_budget, epoch + 1)
        return self.out_of_time

    def finish(self, ctx: StepContext | None) -> None:
        """The family's closing fit on every member (each on its own, possibly bootstrapped,
        windows); its figures join the last metrics row and the final checkpoints are written again.
        When the best checkpoint is an earlier epoch's, its fit (it is the file users generate from)
        comes first; under --budget the last checkpoint's fit is skipped when what is left of the
        budget is shorter than the first fit took (before, both fits shared it and gumbel on S. suis
        ended 20 s past --budget 300, each fit cut after 10 iterations)."""
        if not self.closing or ctx is None or not self.history:
            return
        best_too = bool(self.saving and self.since_best and self.best_path.exists())
        fits = len(self.delivered) * (2 if best_too else 1)
        if best_too:
            t = time.time()
            self.fit_best(ctx, fits)
            fits, took = len(self.delivered), time.time() - t
            budget = self.cfg.train.time_budget
            if budget and time.time() + took > self.t0 + budget:
                self.history[-1]["refit_skipped"] = 1.0
                log.info("closing fit of the last checkpoint skipped: %.0f s of the budget left, the fit "
                         "takes about %.0f s (the best checkpoint, the one to generate from, has its fit)",
                         max(self.t0 + budget - time.time(), 0.0), took)
                with cli.critical():
                    write_metrics(self.run_dir / "metrics.csv", self.history)
                return
        t, figures = time.time(), Meter()
        for m, nets in enumerate(self.delivered):
            ctx.deadline = self.fit_deadline(fits - m)
            figures.add(self.closing.fit(nets, *self.member_windows(m), ctx))
        if not figures.sums:
            return
        done = {**figures.means(), "finish_s": time.time() - t}
        self.history[-1].update(done)
        log.info("closing fit: %s", " ".join(f"{k}={v:.5g}" for k, v in done.items()))
        if self.saving:
            with cli.critical():
                write_metrics(self.run_dir / "metrics.csv", self.history)
                ckpt_io.save_all(self.checkpoint_paths(self.history[-1]["epoch"], self.since_best == 0),
                                 self.payload())

    def fit_deadline(self, fits_left: int) -> float | None:
        """Under --budget, the time by which the next of ``fits_left`` closing fits should end: an
        equal share of what is left of the budget (the engine kept time back for them, priced from
        forward passes; the refit's L-BFGS stops at this deadline, so a machine slower at it than
        priced cuts the refit short rather than overrunning the budget). None without a budget."""
        budget = self.cfg.train.time_budget
        if not budget:
            return None
        now = time.time()
        return now + max(self.t0 + budget - now, 0.0) / max(fits_left, 1)

    def member_windows(self, m: int) -> tuple:
        """Member m's (possibly bootstrapped) training windows and their labels (None without)."""
        rows = torch.from_numpy(np.sort(self.boots[m]))
        return (self.train_x[rows.to(self.train_x.device)],
                None if self.train_y is None else self.train_y[rows.to(self.train_y.device)])

    def fit_best(self, ctx: StepContext, fits: int) -> None:
        """The best epoch's checkpoint (an earlier one than the last) gets the closing fit too: it
        is the file users generate from; its epoch and the fit's figures (best_*) join the last
        metrics row. ``fits``: the closing fits left, these members' first."""
        ck = ckpt_io.load(self.best_path, map_location=self.device)
        figures, members = Meter(), []
        for m, sd in enumerate(ck["members"]):
            nets = self.family.build(self.cfg, self.stats).to(self.device)
            load_weights(nets, sd, self.best_path)
            self.closing.undo(nets)
            ctx.deadline = self.fit_deadline(fits - m)
            figures.add(self.closing.fit(nets, *self.member_windows(m), ctx))
            members.append(nets.state_dict())
        with cli.critical():
            ckpt_io.save(self.best_path, {**ck, "members": members})
        done = figures.means()
        log.info("closing fit of the best checkpoint (epoch %d): %s", ck["epoch"],
                 " ".join(f"{k}={v:.5g}" for k, v in done.items()))
        # the delivered file's fit joins the last metrics row beside the last checkpoint's (best_*)
        self.history[-1].update(best_epoch=float(ck["epoch"]), **{f"best_{k}": v for k, v in done.items()})

    def write_figures(self) -> None:
        if not (self.saving and self.history):
            return
        from analysis.plots import training_curves, training_dynamics

        name = self.cfg.family
        training_curves(self.history, self.run_dir / "training_curves.png", title=f"{name} training")
        if any("d_loss" in r for r in self.history) and "sample_gc" in self.history[-1]:
            training_dynamics(self.history, self.run_dir / "training_dynamics.png", title=f"{name} training dynamics")
        for p in self.family.artifacts(self.ensemble, self.run_dir, None, None):
            log.info("wrote %s", p)

    def run(self) -> TrainResult:
        try:
            result = self._run()
        except BaseException:
            self.dist.close()  # an agreed error has already left together; anything else cannot wait
            raise
        self.dist.close(together=True)  # the other ranks wait here while rank 0 finishes
        return result

    def _run(self) -> TrainResult:
        with self.dist.together():
            self.build_optimizers()
            self.restore()
            if self.saving:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_text(self.run_dir / "config.yaml", self.cfg.to_yaml())
        self.start_together()
        self.price_closing_fit()
        log.info("plan: %s; %d epoch(s) from epoch %d; best checkpoint by %s",
                 self.plan.describe(self.cfg.train.time_budget), self.n_epochs,
                 self.start_epoch + 1, self.family.select_by)
        ctx = None
        for epoch in tqdm(range(self.start_epoch, self.n_epochs), desc=f"{self.cfg.family} epochs",
                          disable=None if self.dist.main else True, leave=False):
            t = time.time()
            figures, ctx, seen = self.run_epoch(epoch)
            if self.end_epoch(epoch, figures, ctx, seen, time.time() - t):
                break
        if not self.dist.main:  # the closing fit, figures and files are rank 0's
            return TrainResult(self.ensemble, self.history, self.run_dir, None, None, self.start_epoch,
                               time.time() - self.t0, main=False)
        if ctx is None and self.resume_ck is not None and self.history:
            # resumed after the last epoch (interrupted during the closing fit): the fit is redone
            ctx = self.context(0, self.start_epoch - 1, False)
        self.finish(ctx)
        self.write_figures()
        done = self.history[-1]["epoch"] if self.history else self.start_epoch
        return TrainResult(self.ensemble, self.history, self.run_dir, self.best_path if self.saving else None,
                           self.last_path if self.saving else None, int(done), time.time() - self.t0)


def train(cfg: C.RunConfig, *, resume: str | None = None, init_checkpoint: str | None = None,
          data=None, save: bool = True, given: dict | None = None, overwrite: bool = False) -> TrainResult:
    """Train one run. ``given``: the settings the user gave ({(section, key): (flag, value)}),
    checked against a resumed run's; ``overwrite``: replace another run's <family>_best/_last.pt
    and, in an explicit run directory, its metrics.csv."""
    return Run(cfg, resume=resume, init_checkpoint=init_checkpoint, data=data, save=save, given=given,
               overwrite=overwrite).run()
