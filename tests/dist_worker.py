"""Run main([...]) as one rank of a torchrun-like job, in a spawned process (tests/test_distributed.py).

What torchrun does for a worker is set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT;
this does the same, optionally patches the engine to record what each step saw and changed, and
writes the exit code, stderr and records to out_dir/rank<R>.json."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import sys
from pathlib import Path


def _digest(module) -> dict:
    """Per top-level network: a hash of every parameter and buffer's bytes."""
    out = {}
    for name, sub in module.items():
        h = hashlib.sha1()
        for k, t in sorted(sub.state_dict().items()):
            h.update(k.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        out[name] = h.hexdigest()
    return out


def _patch(patches: list, rank: int, records: list) -> None:
    import torch

    from models.registry import FAMILIES, get_family
    from train import engine

    get_family("markov")  # registers every family
    if "record" in patches:
        orig_opt = engine.StepContext.optimize

        def optimize(self, name, loss):
            self._stepped.append(name)
            return orig_opt(self, name, loss)

        engine.StepContext.optimize = optimize
        for cls in FAMILIES.values():
            def step(self, nets, batch, ctx, _orig=cls.train_step):
                ctx._stepped = []
                out = _orig(self, nets, batch, ctx)
                rows = [hashlib.sha1(r.cpu().numpy().tobytes()).hexdigest()[:16] for r in batch]
                records.append({"step": ctx.step, "phase": ctx.phase, "stepped": sorted(set(ctx._stepped)),
                                "rows": rows, "digest": _digest(nets)})
                return out

            cls.train_step = step
    if "nan_on_rank1" in patches and rank == 1:
        for cls in FAMILIES.values():
            def step(self, nets, batch, ctx, _orig=cls.train_step):
                out = _orig(self, nets, batch, ctx)
                if ctx.step >= 2:
                    out = {**out, "g_loss": torch.tensor(math.nan)}
                return out

            cls.train_step = step
    if "fixed_noise" in patches:
        from models.stacked import StackedGenerator

        def noise(self, n, L, device, generator):
            return (torch.zeros(n, L, 2 * self.c.noise_dim, device=device),
                    torch.zeros(n, L, self.c.noise_dim, device=device))

        StackedGenerator.noise = noise


def run_rank(rank: int, world: int, port: int, argv: list, out_dir: str, patches: list) -> None:
    if world > 1:
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch

    torch.set_num_threads(1)
    records: list = []
    _patch(patches, rank, records)
    from main import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # pragma: no cover - main returns its code
            code = exc.code
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps({"code": code, "stderr": err.getvalue(),
                                                             "records": records}))
    sys.stdout.flush()
