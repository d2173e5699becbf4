"""Classes a family can be conditioned on, shared by every conditional family: the data's labels
(utils.labels: file stems, label= headers, --label_pattern, --labels), the GC bin of each window
(model.condition gc, generated with --gc), or both.

A window's class is one index, ``label * bins + bin`` (0 when there is neither), and index ``n`` (the
number of classes) is the null class: classifier-free guidance trains it by replacing a window's
class with it at rate model.label_drop, and mixes the conditional and null predictions at
generation, ``null + W (cond - null)`` (``--guidance W``: 1 is the conditional model, 0 the
unconditional one, > 1 sharpens the class). Each family embeds the index its own way (an
embedding added to a transformer's inputs, an LSTM's input and initial state, a projection term in
its discriminator); what a class is, and how one is drawn for sampling, is decided here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from utils.config import option
from utils.errors import ConfigError


@dataclass(frozen=True)
class ConditionOptions:
    condition: str = option("none", "none or gc: also condition on each window's GC bin (generate with --gc)",
                            flag="--condition")
    gc_bins: int = option(5, "quantile bins of training-window GC (--condition gc)")
    label_dim: int = option(16, "class embedding width (labels and GC bins)")

    def validate(self):
        parent = getattr(super(), "validate", None)
        if parent:
            parent()
        if self.condition not in ("none", "gc"):
            raise ConfigError(f"model.condition must be none or gc, got {self.condition!r}")
        if self.condition == "gc" and self.gc_bins < 2:
            raise ConfigError("model.gc_bins must be >= 2")
        if self.label_dim < 1:
            raise ConfigError("model.label_dim must be >= 1")


@dataclass(frozen=True)
class GuidanceOptions:
    """Classifier-free guidance (Ho & Salimans 2022) for families that take --guidance."""

    label_drop: float = option(0.1, "classifier-free guidance: rate at which a training window's class is "
                                    "replaced by the null class (0 = no unconditional model)", flag="--label_drop")

    def validate(self):
        parent = getattr(super(), "validate", None)
        if parent:
            parent()
        if not 0.0 <= self.label_drop < 1.0:
            raise ConfigError(f"model.label_drop must be in [0, 1), got {self.label_drop}")


def gc_of(x: torch.Tensor) -> torch.Tensor:
    """(B, L) codes -> (B,) GC fraction."""
    return ((x == 1) | (x == 2)).float().mean(1)


class Classes(nn.Module):
    """The class of each window and of each requested sample. Its buffers (GC-bin edges, label
    frequencies) travel in the checkpoint, so a loaded model draws classes as the trained one did."""

    def __init__(self, stats, opts: ConditionOptions):
        super().__init__()
        self.n_labels = len(stats.label_names)
        self.n_bins = opts.gc_bins if opts.condition == "gc" else 0
        self.n = max(1, self.n_labels) * max(1, self.n_bins) if (self.n_labels or self.n_bins) else 0
        pct = list(stats.gc_percentiles) or [stats.gc] * 101
        inner = [pct[round(100 * i / self.n_bins)] for i in range(1, self.n_bins)] if self.n_bins else []
        self.register_buffer("edges", torch.tensor(inner, dtype=torch.float32))
        freq = list(getattr(stats, "label_freq", ()) or [1.0] * self.n_labels)
        self.register_buffer("label_freq", torch.tensor(freq, dtype=torch.float32))
        # label x bin models: each label's share of windows in each GC bin (from its GC percentiles),
        # so a label asked for without --gc gets its own bins, not the pooled quantiles' uniform mix
        self.register_buffer("bin_freq", self._bin_freq(getattr(stats, "label_gc_percentiles", ())))

    def _bin_freq(self, label_pct) -> torch.Tensor:
        if not (self.n_labels and self.n_bins):
            return torch.zeros(0, 0)
        out = torch.full((self.n_labels, self.n_bins), 1.0 / self.n_bins)
        for k, pct in enumerate(label_pct):
            pct = np.asarray(pct, dtype=np.float64)
            if pct.size != 101 or np.isnan(pct).any():
                continue
            # the fraction of the label's windows below each edge, read off its percentile curve
            below = np.interp(self.edges.numpy(), pct, np.arange(101) / 100.0)
            share = np.diff(np.concatenate([[0.0], below, [1.0]])).clip(0)
            out[k] = torch.from_numpy(share / share.sum())
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before bin_freq (stop 18): uniform bins, as those models drew them
        state_dict.setdefault(prefix + "bin_freq", torch.full_like(self.bin_freq, 1.0 / max(1, self.n_bins))
                              if self.bin_freq.numel() else self.bin_freq.clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def null(self) -> int:
        return self.n

    def bin_of_gc(self, gc: torch.Tensor) -> torch.Tensor:
        return torch.bucketize(gc.float().to(self.edges.device), self.edges, right=True)

    def of_batch(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """(B,) class of each training window (B, L) with its data labels (B,) (None: none)."""
        y = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        if self.n_labels:
            if labels is None:
                raise ConfigError("this model was built for labelled data; the batch has no labels")
            y = labels.to(x.device).long() * max(1, self.n_bins)
        if self.n_bins:
            y = y + self.bin_of_gc(gc_of(x)).to(x.device)
        return y

    def dropped(self, y: torch.Tensor, rate: float, generator=None) -> torch.Tensor:
        """Classifier-free guidance training: each class replaced by the null class with ``rate``."""
        if rate <= 0:
            return y
        drop = torch.rand(y.shape, device=y.device, generator=generator) < rate
        return torch.where(drop, torch.full_like(y, self.null), y)

    def for_sampling(self, n: int, device, generator=None, *, label: int | None = None,
                     gc: float | None = None) -> torch.Tensor:
        """(n,) classes for generation: the requested label (else drawn by training frequency) and
        the bin of the requested GC (else drawn as the label's training windows fill the bins, or
        uniformly without labels: quantile bins are equally frequent)."""
        if gc is not None and not self.n_bins:
            raise ConfigError("--gc: this model was trained without --condition gc")
        y = torch.zeros(n, dtype=torch.long, device=device)
        if self.n_labels:
            if label is None:
                lab = torch.multinomial(self.label_freq.to(device), n, replacement=True, generator=generator)
            else:
                lab = torch.full((n,), int(label), dtype=torch.long, device=device)
            y = lab * max(1, self.n_bins)
        if self.n_bins:
            if gc is None and self.n_labels:
                probs = self.bin_freq.to(device)[y // self.n_bins]
                b = torch.multinomial(probs, 1, replacement=True, generator=generator).squeeze(1)
            elif gc is None:
                b = torch.randint(0, self.n_bins, (n,), device=device, generator=generator)
            else:
                b = self.bin_of_gc(torch.full((n,), float(gc))).to(device)
            y = y + b
        return y


def classes_of(nets, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    """Each training or held-out window's class, or None for networks built without classes."""
    return nets["classes"].of_batch(x, labels) if "classes" in nets else None


def requested(nets, n: int, device, generator=None, *, label: int | None = None,
              gc: float | None = None) -> torch.Tensor | None:
    """(n,) classes to generate (Classes.for_sampling), or None for networks built without classes,
    which cannot take --gc."""
    if "classes" not in nets:
        if gc is not None:
            raise ConfigError("--gc: this model was trained without --condition gc")
        return None
    return nets["classes"].for_sampling(n, device, generator, label=label, gc=gc)


class ClassEmbedding(nn.Embedding):
    """An embedding of n classes and the null class (row n) for classifier-free guidance. A
    checkpoint written before the family had guidance (gumbel and seqgan, until stop 27) holds n
    rows; it loads with a zero null row, its conditional path unchanged, and ``has_null`` false, so
    that guiding it is refused (check_null)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("has_null", torch.tensor(True))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        w = state_dict.get(prefix + "weight")
        old = w is not None and w.dim() == 2 and w.shape[0] == self.num_embeddings - 1
        if old:
            state_dict[prefix + "weight"] = torch.cat([w, w.new_zeros(1, w.shape[1])])
            state_dict[prefix + "has_null"] = torch.tensor(False)
        state_dict.setdefault(prefix + "has_null", torch.tensor(True))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def check_null(self) -> None:
        if not bool(self.has_null):
            raise ConfigError("--guidance: this checkpoint was trained before its family had classifier-free "
                              "guidance (no null class); generate without --guidance, or retrain")


def with_null(y: torch.Tensor, table: nn.Embedding) -> torch.Tensor:
    """(n,) classes -> (2n,): the classes, then as many of the null class (the table's last row), for
    one guided pass whose two halves ``mix`` combines."""
    return torch.cat([y, torch.full_like(y, table.num_embeddings - 1)])


def mix(cond: torch.Tensor, null: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance on logits: null + W (cond - null)."""
    return null + guidance * (cond - null)
