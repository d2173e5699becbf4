"""Shared layers: pre-norm transformer stacks, Gumbel-softmax with an explicit generator, init."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def xavier_init(module: nn.Module, gain: float = 0.1) -> None:
    """Xavier-uniform (small gain) on every Linear weight, zeros on biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class TransformerStack(nn.Module):
    """Input projection + LayerNorm + learned positions -> pre-norm encoder -> LayerNorm."""

    def __init__(self, d_in: int, d_model: int, n_layers: int, n_heads: int, max_len: int,
                 dropout: float = 0.0, ff_mult: int = 4, kernel: int = 1):
        super().__init__()
        # kernel > 1: the input projection is a 1-D convolution, so the first layer already sees
        # k-mers (a per-position Linear when kernel = 1).
        self.kernel = kernel
        self.proj = nn.Linear(d_in, d_model) if kernel == 1 else nn.Conv1d(d_in, d_model, kernel, padding=kernel // 2)
        self.norm_in = nn.LayerNorm(d_model)
        self.pos = nn.Parameter(torch.zeros(1, max_len, d_model))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, ff_mult * d_model, dropout,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm_out = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, d_in) -> (B, L, d_model)
        h = self.proj(x) if self.kernel == 1 else self.proj(x.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2)
        h = self.norm_in(h) + self.pos[:, : x.shape[1]]
        return self.norm_out(self.encoder(h))


def gumbel_softmax(logits: torch.Tensor, tau: float = 1.0, hard: bool = True,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Gumbel-softmax over the last dim; hard=True gives straight-through one-hots (forward one-hot,
    backward the soft gradient). Noise comes from ``generator`` for reproducibility."""
    u = torch.rand(logits.shape, device=logits.device, generator=generator).clamp_(1e-10, 1 - 1e-10)
    y = F.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1)
    if not hard:
        return y
    idx = y.argmax(-1, keepdim=True)
    return torch.zeros_like(y).scatter_(-1, idx, 1.0) - y.detach() + y


def sample_categorical(logits: torch.Tensor, temperature: float = 1.0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """(..., V) logits -> (...) samples from softmax(logits / temperature), by Gumbel-max."""
    u = torch.rand(logits.shape, device=logits.device, generator=generator).clamp_(1e-10, 1 - 1e-10)
    return (logits / max(temperature, 1e-6) - torch.log(-torch.log(u))).argmax(-1)


def kmer_probs(probs: torch.Tensor, k: int) -> torch.Tensor:
    """Expected k-mer spectrum (4^k,) of per-position distributions (B, L, 4), treating positions
    as independent given the logits; differentiable. For one-hot input it is the exact spectrum."""
    B, L, V = probs.shape
    out = probs[:, : L - k + 1]
    for j in range(1, k):
        nxt = probs[:, j : L - k + 1 + j]
        out = (out.unsqueeze(-1) * nxt.unsqueeze(-2)).reshape(B, L - k + 1, -1)
    return out.mean(dim=(0, 1))
