"""The classifier two-sample test (C2ST) every quality figure is judged by.

A small CNN learns to tell generated sequences from held-out real ones; its ROC AUC on sequences
it did not train on says how far apart the two sets are (0.5 = indistinguishable). Two things
make the figure worth reading:

- power: the classifier (its receptive field, dilations, width, epochs) is chosen by how well it
  separates sets we know differ, markov-3 and markov-5 samples from held-out DNA, against the
  real-vs-real floor, for the CPU time (bench/judge_power.py);
- an interval: the sets are split in ``folds`` parts; a network trained on the other parts scores
  each part (cross-fitting, so every sequence is scored once by a network that never saw it),
  the AUC is the mean of the folds' AUCs, and a bootstrap over the scored sequences gives a 95%
  interval of it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from analysis.metrics import as_codes, roc_auc


@dataclass(frozen=True)
class JudgeSpec:
    name: str
    channels: int = 64
    kernels: tuple = (7, 5)
    dilations: tuple = (1, 1)
    epochs: int = 6
    lr: float = 2e-3
    batch: int = 128
    # layers after the first add their output to their input (h + relu(conv(h))): the judges grown for
    # long sequences (for_length) are 6-7 layers deep, and as a plain stack some of their initialisations
    # stalled at the chance loss for the whole training (stop 47: uniform random DNA read 0.5 against
    # E. coli by one of three judges at 1,000 bp)
    residual: bool = False

    @property
    def receptive_field(self) -> int:
        return 1 + sum((k - 1) * d for k, d in zip(self.kernels, self.dilations))


JUDGES = {
    # the harness's classifier until stop 12 (receptive field 11)
    "harness": JudgeSpec("harness"),
    # a plain two-layer CNN with a 17-base receptive field (issue 14's outside judge)
    "cnn17": JudgeSpec("cnn17", kernels=(9, 9)),
    # dilated: 61 bases with four layers
    "dilated": JudgeSpec("dilated", kernels=(5, 5, 5, 5), dilations=(1, 2, 4, 8)),
    # the same, wider and trained longer
    "dilated_wide": JudgeSpec("dilated_wide", channels=128, kernels=(5, 5, 5, 5), dilations=(1, 2, 4, 8), epochs=10),
}
# the most separating judge, and the most per CPU second, in bench/judge_power.py (docs/benchmarks.md)
DEFAULT = "dilated"


def for_length(spec: JudgeSpec, length: int) -> JudgeSpec:
    """The judge for sequences of this length: dilated layers (doubling dilation, the last kernel) are
    added until the receptive field covers half the sequence, so at 500 and 1,000 bp the judge sees
    structure hundreds of bases apart; a grown judge is residual (JudgeSpec.residual), and its name
    says both ("dilated_rf509_res"). At 70 bp the default judge (61 bases) is unchanged."""
    grown = spec
    while grown.receptive_field < length / 2 and len(grown.kernels) < 12:
        grown = dataclasses.replace(grown, kernels=grown.kernels + grown.kernels[-1:],
                                    dilations=grown.dilations + (grown.dilations[-1] * 2,), residual=True)
    if grown is spec:
        return spec
    return dataclasses.replace(grown, name=f"{spec.name}_rf{grown.receptive_field}_res")


class JudgeNet(torch.nn.Module):
    """The judge's CNN; n_out > 1 makes it a classifier of n_out classes (analysis.fidelity)."""

    def __init__(self, spec: JudgeSpec, n_out: int = 1):
        super().__init__()
        layers, c_in = [], 4
        for k, d in zip(spec.kernels, spec.dilations):
            layers += [torch.nn.Conv1d(c_in, spec.channels, k, dilation=d, padding=d * (k - 1) // 2), torch.nn.ReLU()]
            c_in = spec.channels
        self.conv = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(2 * spec.channels, n_out)
        self.residual = spec.residual

    def features(self, x):  # (B, 4, L) one-hot -> (B, C, L)
        if not self.residual:
            return self.conv(x)
        h = self.conv[1](self.conv[0](x))  # the first layer maps 4 channels to C
        for i in range(2, len(self.conv), 2):
            h = h + self.conv[i + 1](self.conv[i](h))
        return h

    def forward(self, x):  # (B, L) codes -> (B,) logits, or (B, n_out)
        h = self.features(F.one_hot(x, 4).float().transpose(1, 2))  # (B, C, L)
        out = self.head(torch.cat([h.mean(2), h.amax(2)], 1))
        return out.squeeze(1) if out.shape[1] == 1 else out


def _fit_and_score(spec: JudgeSpec, X, y, train_idx, test_idx, seed: int, device=None) -> np.ndarray:
    """Train a judge on train_idx and return its logits on test_idx. The network is initialised and
    the batches drawn on the CPU's generators whatever the device, so a judge on a GPU starts from
    the same weights and reads the same batches as on the CPU (its arithmetic differs in rounding)."""
    torch.default_generator.manual_seed(seed)  # the CPU's only: torch.manual_seed reseeds CUDA too
    net = JudgeNet(spec)
    device = torch.device(device or "cpu")
    if device.type != "cpu":
        net, X, y = net.to(device), X.to(device), y.to(device)
        train_idx, test_idx = train_idx.to(device), test_idx.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(spec.epochs):
        order = train_idx[torch.randperm(train_idx.numel(), generator=g).to(device)]
        for s in range(0, order.numel(), spec.batch):
            idx = order[s : s + spec.batch]
            loss = F.binary_cross_entropy_with_logits(net(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        return torch.cat([net(X[test_idx[s : s + 2048]]) for s in range(0, test_idx.numel(), 2048)]).cpu().numpy()


def grouped_folds(groups: np.ndarray, folds: int, rng) -> np.ndarray:
    """A fold for each sequence such that all sequences of one group share a fold: groups, in a
    random order, each go to the fold that has the fewest sequences so far."""
    fold = np.zeros(groups.shape[0], np.int64)
    size = np.zeros(folds, np.int64)
    ids, counts = np.unique(groups, return_counts=True)
    for i in rng.permutation(ids.size):
        f = int(size.argmin())
        fold[groups == ids[i]] = f
        size[f] += counts[i]
    return fold


# independent cross-fits per C2ST figure (stop 28): one judge's AUC on a generated set moves with its
# seed by far more than its bootstrap interval (S. suis, 20,000 a side: 0.593 / 0.663 / 0.662 / 0.627
# over seeds 0-3, each interval +-0.005), so a figure is the mean of REPEATS judges and its interval
# carries their spread (docs/benchmarks.md, "The judge's seed")
REPEATS = 3
MAX_N = 20000  # sequences a side, at most, that a judge reads (issue 14: at least 20,000 where they exist)


def c2st(real, gen, *, judge: str | JudgeSpec = DEFAULT, seed: int = 0, max_n: int = MAX_N, folds: int = 2,
         n_boot: int = 400, real_groups=None, gen_groups=None, repeats: int = REPEATS, device=None) -> dict:
    """{"auc", "lo", "hi", "n", "judge", "grouped", "repeats", "sd", "interval", "device"}: cross-fitted C2ST AUC of gen
    against real with a 95% interval. Both sets are subsampled to the same size n (at most max_n
    each) and cropped to one length; NaN below 10 sequences a side.

    ``repeats`` independent cross-fits (seeds seed, seed + 1, ...: each its own subsample, folds and
    initialisations) are averaged: "auc" is their mean and "sd" their standard deviation. A single
    judge's AUC moves with its seed by several times its bootstrap interval, so with repeats > 1 the
    interval is auc +- t sqrt(mean bootstrap variance + sd^2 / repeats), t the 97.5% point of Student's
    t at the Welch-Satterthwaite degrees of freedom of that sum (the spread term has only repeats - 1;
    see ``interval``); with one, the bootstrap's percentiles as before (repeat 0 is exactly the
    single-judge figure of the same seed).

    real_groups / gen_groups: a block id per sequence (e.g. which held-out block an overlapping
    window comes from); the sequences of one block then all land in one fold. Without them the
    folds are random, and a window's neighbour, sharing most of its bases, is often in the
    judge's training fold: on a small held-out set the judge can then learn the set itself and
    tell any other sequence from it (docs/benchmarks.md, "The judge's folds"). With groups the
    interval comes from a block bootstrap: whole groups are resampled, since the windows of one
    block are not independent draws.

    device: where the judges train (None: the CPU); on a CUDA device the same subsamples, folds,
    initialisations and batches as on the CPU, so its figure differs from the CPU's by rounding only."""
    spec = JUDGES[judge] if isinstance(judge, str) else judge
    device = torch.device(device or "cpu")
    a, b = as_codes(real), as_codes(gen)
    L = min(a.shape[1], b.shape[1])
    spec = for_length(spec, L)
    n = min(a.shape[0], b.shape[0], max_n)
    grouped = real_groups is not None or gen_groups is not None
    out = {"n": int(n), "judge": spec.name, "grouped": grouped, "repeats": int(repeats), "device": device.type}
    if n < 10:
        return {"auc": float("nan"), "lo": float("nan"), "hi": float("nan"), "sd": float("nan"), "interval": None, **out}
    runs = [_cross_fit(spec, a, b, L, n, seed + r, folds, n_boot, real_groups, gen_groups, device)
            for r in range(max(repeats, 1))]
    aucs = np.array([auc for auc, _ in runs])
    auc = float(aucs.mean())
    if len(runs) == 1:
        lo, hi = np.nanpercentile(runs[0][1], [2.5, 97.5])
        return {"auc": auc, "lo": float(lo), "hi": float(hi), "sd": float("nan"), "interval": "bootstrap", **out}
    sd = float(aucs.std(ddof=1))
    half = interval(float(np.mean([np.nanvar(boot) for _, boot in runs])), sd, len(runs))
    return {"auc": auc, "lo": auc - half, "hi": min(auc + half, 1.0), "sd": sd, "interval": "t", **out}


def versus_floor(row: dict, floor: dict) -> str:
    """Where a C2ST's 95% interval lies against the floor's: 'above the floor', 'overlaps the floor',
    'below the floor'; 'n/a' without intervals."""
    ends = (row.get("c2st_lo"), row.get("c2st_hi"), floor.get("c2st_lo"), floor.get("c2st_hi"))
    if any(v is None or v != v for v in ends):
        return "n/a"
    lo, hi, f_lo, f_hi = ends
    return "above the floor" if lo > f_hi else "below the floor" if hi < f_lo else "overlaps the floor"


def interval(boot_var: float, sd: float, repeats: int, level: float = 0.95) -> float:
    """Half-width of the interval of a mean of ``repeats`` judges: t sqrt(boot_var + sd^2 / repeats).
    The bootstrap variance (thousands of resamples) is taken as known; the judges' spread sd^2 is
    estimated from ``repeats`` values, so the sum's degrees of freedom are Welch-Satterthwaite's,
    (boot_var + s2)^2 (repeats - 1) / s2^2 with s2 = sd^2 / repeats: with three judges whose spread
    dominates, t is near 4.3 (2 degrees of freedom), not 1.96; with a negligible spread, 1.96."""
    from scipy.stats import t as student_t

    s2 = sd**2 / repeats
    total = boot_var + s2
    if total <= 0:
        return 0.0
    dof = np.inf if s2 == 0 else total**2 * (repeats - 1) / s2**2
    return float(student_t.ppf(0.5 + level / 2, dof) * np.sqrt(total))


def _cross_fit(spec: JudgeSpec, a, b, L: int, n: int, seed: int, folds: int, n_boot: int, real_groups,
               gen_groups, device=None) -> tuple[float, np.ndarray]:
    """One cross-fitted judge of n sequences a side: (mean AUC over the folds, its n_boot bootstrap
    values)."""
    rng = np.random.default_rng(seed)
    grouped = real_groups is not None or gen_groups is not None
    pick_a, pick_b = rng.choice(a.shape[0], n, replace=False), rng.choice(b.shape[0], n, replace=False)
    a, b = a[pick_a, :L], b[pick_b, :L]
    X = torch.from_numpy(np.concatenate([a, b]).astype(np.int64))
    y = torch.cat([torch.zeros(n), torch.ones(n)])
    if grouped:
        side = [grouped_folds(np.asarray(g)[p], folds, rng) if g is not None else rng.permutation(n) % folds
                for g, p in ((real_groups, pick_a), (gen_groups, pick_b))]
        fold = np.concatenate(side)
        parts = [np.flatnonzero(fold == f) for f in range(folds)]
        # the bootstrap's units: a whole block where groups are given, else one sequence
        units = [np.unique(np.asarray(g)[p], return_inverse=True)[1].ravel() if g is not None else np.arange(n)
                 for g, p in ((real_groups, pick_a), (gen_groups, pick_b))]
        unit = np.concatenate([units[0], units[1] + units[0].max() + 1])
    else:
        parts = np.array_split(rng.permutation(2 * n), folds)
    scored = []  # (scores, labels) per fold
    with torch.random.fork_rng(devices=[]):
        for f, test in enumerate(parts):
            train = np.concatenate([p for i, p in enumerate(parts) if i != f])
            s = _fit_and_score(spec, X, y, torch.from_numpy(train), torch.from_numpy(test), seed * 7919 + f, device)
            scored.append((s, y[test].numpy()))
    auc = float(np.mean([roc_auc(s, t) for s, t in scored]))
    boot = np.empty(n_boot)
    fold_units = [np.unique(unit[test], return_inverse=True)[1].ravel() for test in parts] if grouped else None
    for i in range(n_boot):
        vals = []
        for f, (s, t) in enumerate(scored):
            if grouped:  # resample blocks, not the overlapping windows within them (a block bootstrap)
                inv = fold_units[f]
                k = inv.max() + 1
                idx = np.repeat(np.arange(s.size), np.bincount(rng.integers(0, k, k), minlength=k)[inv])
            else:
                idx = rng.integers(0, s.size, s.size)
            vals.append(roc_auc(s[idx], t[idx]))
        boot[i] = np.mean(vals)
    return auc, boot


# the reference of analyze and compare_models, as the benchmarks': the held-out blocks' windows every 10
# bases at 70 bp (bench/genomes.py; a window shares 60 bases with its neighbour, 7x the non-overlapping
# windows), every 35 above 70 bp with the judge's folds keeping each block's windows together (the
# 500 and 1,000 bp harness, bench/quality.py: stop 47 found random folds let a judge learn the
# held-out bases that long overlapping windows share)
REF_STRIDE, REF_STRIDE_LONG, GROUPED_ABOVE = 10, 35, 70


def reference_windows(data, stride: int | None = None):
    """(windows, groups, description): the real sequences a metric row of analyze or compare_models is
    scored against, for a split ``data`` (utils.sequences.SequenceData). Windows every ``stride`` bases
    of the held-out segments (None: REF_STRIDE, or REF_STRIDE_LONG above GROUPED_ABOVE bp), as many as
    the held-out DNA allows (issue 14's judge); groups is each window's block above GROUPED_ABOVE bp
    (c2st's real_groups), else None. With stride 0 (or as long as a window) the non-overlapping
    held-out windows and random folds, the reference before stop 56; the training windows where
    nothing is held out."""
    L = data.seq_len
    if not data.val.shape[0]:
        return data.train, None, "no held-out blocks: training windows"
    stride = _ref_stride(L, stride)
    if not stride:
        return data.val, None, "held-out blocks"
    windows, groups = _dense(data.val_segments, L, stride)
    return windows, groups, f"held-out blocks, windows every {stride} bases" + (
        ", judged with folds by block" if groups is not None else "")


def selection_reference(data, stride: int | None = None):
    """(windows, groups, description) for the per-epoch monitor's judge (train/judging.py): as
    reference_windows, of the held-out blocks that score each epoch (data.selection's: the selection
    half under data.select_apart, whose judged half training never reads); (None, None, ...) when
    nothing is held out."""
    L = data.seq_len
    apart = getattr(data, "select", None) is not None
    segments = data.select_segments if apart else data.val_segments
    if not data.val.shape[0] or not segments:
        return None, None, "no held-out blocks"
    half = "selection " if apart else ""
    stride = _ref_stride(L, stride)
    if not stride:
        return data.selection[0], None, f"{half}held-out blocks"
    windows, groups = _dense(segments, L, stride)
    return windows, groups, f"{half}held-out windows every {stride} bases"


def _dense(segments, L: int, stride: int):
    """(windows every ``stride`` bases of segments, each window's block above GROUPED_ABOVE bp else None)."""
    windows, groups = heldout_windows(segments, L, stride, groups=True)
    return windows, (groups if L > GROUPED_ABOVE else None)


def reference_labels(data, stride: int | None = None):
    """Each window of reference_windows(data, stride): its label's index (data.label_names), for the
    conditional fidelity and per-label C2ST of analyze and compare_models; None without labels."""
    if data.train_labels is None:
        return None
    if not data.val.shape[0]:
        return data.train_labels
    stride = _ref_stride(data.seq_len, stride)
    if not stride:
        return data.val_labels
    _, segment = heldout_windows(data.val_segments, data.seq_len, stride, groups=True)
    return np.asarray(data.val_segment_labels)[segment]


def _ref_stride(L: int, stride: int | None) -> int:
    """The reference's stride at L bp: the default for None, 0 for the non-overlapping windows."""
    if stride is None:
        stride = REF_STRIDE if L <= GROUPED_ABOVE else REF_STRIDE_LONG
    return 0 if stride >= L else stride


def heldout_windows(segments, seq_len: int, stride: int, *, groups: bool = False, span: int | None = None):
    """Overlapping windows (every ``stride`` bases) of held-out segments: more real sequences for
    the judge than the non-overlapping held-out windows, from the same blocks. groups=True also
    returns each window's group for c2st's real_groups: its segment, or with ``span`` its stretch.

    span: each segment is cut into stretches of ``span`` bases and a window's group is its stretch;
    windows that cross a stretch's end are left out, so no two groups share a base and a judge whose
    folds keep groups together never scores a window whose bases it trained on (a purged group
    fold). Many short stretches give the folds and the block bootstrap many units where a genome has
    few held-out blocks (lambda: 4 blocks, about 28 stretches of 350 bases)."""
    from numpy.lib.stride_tricks import sliding_window_view

    if span is not None and span < seq_len:
        raise ValueError(f"span {span} is shorter than a window ({seq_len})")
    out, ids, first = [], [], 0
    for i, seg in enumerate(segments):
        if len(seg) < seq_len:
            continue
        starts = np.arange(0, len(seg) - seq_len + 1, stride)
        if span is None:
            group = np.full(starts.size, i, np.int64)  # the segment's index
        else:
            keep = starts % span + seq_len <= span  # the window ends inside its stretch
            starts, group = starts[keep], first + starts[keep] // span
            first += -(-len(seg) // span)
        out.append(sliding_window_view(np.asarray(seg), seq_len)[starts])
        ids.append(group)
    w = np.concatenate(out).astype(np.uint8) if out else np.zeros((0, seq_len), np.uint8)
    return (w, np.concatenate(ids) if ids else np.zeros(0, np.int64)) if groups else w
