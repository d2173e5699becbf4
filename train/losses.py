"""Pure losses: the nucleotide-balanced loss and the GAN losses (bce, wgan-gp, hinge)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

def balance_penalty(probs: torch.Tensor, target_gc: float, ref_freq=None) -> torch.Tensor:
    """Penalty on a (..., 4) distribution over A, C, G, T (soft or one-hot), averaged over all
    positions: |GC - target_gc| + (|A - T| + |G - C|) + 0.5 * L1 distance from ``ref_freq``
    (the training data's base frequencies; omitted when None).

    Zero when the mean distribution has the target GC, Chargaff-balanced pairs and matches the
    reference; grows linearly off it.
    """
    p = probs.reshape(-1, probs.shape[-1]).mean(0)  # (4,)
    a, c, g, t = p[0], p[1], p[2], p[3]
    pen = (c + g - target_gc).abs() + (a - t).abs() + (g - c).abs()
    if ref_freq is not None:
        ref = torch.as_tensor(ref_freq, dtype=p.dtype, device=p.device)
        pen = pen + 0.5 * (p - ref).abs().sum()
    return pen


def balanced_loss(logits: torch.Tensor, targets: torch.Tensor, *, weight: float, target_gc: float,
                  ref_freq=None, ignore_index: int = -100, per_row: bool = False) -> torch.Tensor:
    """(1 - w) * cross-entropy + w * balance_penalty(softmax(logits)): the curriculum prototype's loss.

    logits (B, L, V), targets (B, L); the penalty uses the first four classes (A, C, G, T).
    per_row: the cross-entropy is each row's mean over its scored positions, averaged over rows
    (every row weighs the same however many positions it scores), instead of the mean over all.
    """
    if per_row:
        ce_pos = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=ignore_index, reduction="none")
        n = (targets != ignore_index).sum(1)
        ce = (ce_pos.sum(1)[n > 0] / n[n > 0]).mean()
    else:
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                             ignore_index=ignore_index)
    if weight <= 0:
        return ce
    probs = torch.softmax(logits[..., :4], dim=-1)
    if ignore_index is not None:
        keep = targets.reshape(-1) != ignore_index
        probs = probs.reshape(-1, 4)[keep]
    return (1 - weight) * ce + weight * balance_penalty(probs, target_gc, ref_freq)


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "bce",
           smooth: float = 0.0) -> torch.Tensor:
    """Discriminator loss; ``smooth`` is one-sided label smoothing (real target 1 - smooth)."""
    if kind == "bce":
        real_t = torch.full_like(real_logits, 1.0 - smooth)
        return (F.binary_cross_entropy_with_logits(real_logits, real_t)
                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    if kind == "wgan-gp":
        return fake_logits.mean() - real_logits.mean()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    raise ValueError(f"unknown GAN loss {kind!r}")


def g_loss(fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Generator loss (non-saturating for bce)."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind in ("wgan-gp", "hinge"):
        return -fake_logits.mean()
    raise ValueError(f"unknown GAN loss {kind!r}")


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP penalty E[(||grad D(x_hat)|| - 1)^2] on random interpolates of (B, ...) inputs."""
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device,
                     generator=generator)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    # The penalty is differentiated twice; the fused CPU attention kernels have no double
    # backward, so attention runs on the plain (math) kernel here.
    with sdpa_kernel(SDPBackend.MATH):
        out = critic(x_hat)
        (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.reshape(grad.shape[0], -1).norm(dim=1) - 1) ** 2).mean()


PASS_TOKENS = 1 << 17  # bases per batched no-grad pass (2 GB of 4-head attention scores at 1,000 bp)
CPU_PASS_TOKENS = 1 << 13  # on a CPU: passes this small run fastest (their activations stay in cache)


def rows_per_pass(length: int, cap: int, device=None) -> int:
    """Rows of length ``length`` in one batched evaluation or sampling pass: ``cap`` at short lengths,
    PASS_TOKENS // length at long ones, so a transformer's attention (rows x heads x length^2)
    stays a few GB at 1,000 bp instead of tens. On a CPU ``device``, CPU_PASS_TOKENS // length:
    the closing refit's frozen pass at 70 bp took 0.35-0.45 ms a window in passes of 64-128 rows
    and 0.83-0.98 ms in passes of 2,048 (stacked's and masked's transformers; the LSTMs 0.18-0.19
    and 0.24-0.27), on 2 cores; masked's sampling 32.9 ms a sequence against 59.7."""
    tokens = CPU_PASS_TOKENS if device is not None and torch.device(device).type == "cpu" else PASS_TOKENS
    return max(1, min(cap, tokens // max(1, length)))


def spread_windows(val: torch.Tensor, labels: torch.Tensor | None, max_windows: int):
    """At most ``max_windows`` of the held-out windows (and their labels), taken at an even stride
    so that every held-out block is represented, not only the first."""
    step = max(1, val.shape[0] // max_windows)
    return val[::step][:max_windows], None if labels is None else labels[::step][:max_windows]


@torch.no_grad()
def heldout_nll(logits_fn, val: torch.Tensor | None, device, *, max_windows: int = 4096, batch: int = 1024,
                seed: int = 0, labels: torch.Tensor | None = None) -> dict:
    """{"val_nll": mean negative log-likelihood in nats per base, "val_passes": windows read} of up to ``max_windows`` held-out
    windows (B, L) under a teacher-forced model: logits_fn(x, generator, y) -> (B, L, 4) logits of
    every position given the bases before it (y: the windows' data labels, or None without). The generator (for models with noise inputs) is
    seeded, so an epoch's score does not depend on the training random streams. {} without
    held-out windows."""
    if val is None or not val.shape[0]:
        return {}
    g = torch.Generator(device=device).manual_seed(seed)
    val, labels = spread_windows(val, labels, max_windows)
    batch = rows_per_pass(val.shape[1], batch, device)
    total, n = 0.0, 0
    for s in range(0, val.shape[0], batch):
        x = val[s : s + batch].to(device).long()
        logits = logits_fn(x, g, None if labels is None else labels[s : s + batch].to(device))
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x.reshape(-1), reduction="sum"))
        n += x.numel()
    return {"val_nll": total / n, "val_passes": val.shape[0]}
