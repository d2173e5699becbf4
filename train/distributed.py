"""Several training processes under torchrun: one process group, gradients averaged for every
optimiser step, decisions taken on rank 0 and shared, errors agreed on by every rank.

    torchrun --standalone --nproc_per_node=4 main.py --mode train --model stacked ...

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them (or with
WORLD_SIZE=1) every call here is a no-op and training is a plain single process.

Why an explicit all-reduce and not the ``DistributedDataParallel`` wrapper: the GAN families step
their networks separately (a discriminator step, then a generator step that backpropagates through
the discriminator but must not update it, rollouts with a copy of the generator) and call
submodules directly. DDP's reducer hooks one backward per forward of the wrapped module and needs
``find_unused_parameters`` for partial steps; here each optimiser group's gradients are averaged
right before its own step (``average_grads``), which is the arithmetic DDP performs (a sum over
ranks divided by the world size, in one flat buffer), for whatever the family's step touched.
Initial weights are broadcast from rank 0, as DDP does when it wraps a module.

The engine calls collectives only at points every rank reaches in the same order: the optimiser
steps (the same code path on every rank, because every decision a step makes comes from step
counts and the budget clock agreed here), ``sync`` every few steps, and ``share`` at each epoch's end.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from utils import errors

# How long a rank waits in a collective before giving up (rank 0's monitoring and checkpoints run
# while the others wait at the epoch's end).
TIMEOUT = datetime.timedelta(minutes=30)


def env_rank() -> int:
    """This process's rank as torchrun gave it (0 outside torchrun); usable before any setup."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def env_world() -> int:
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


@dataclass
class Dist:
    """This process's place in the job. ``world == 1``: a single process, every method a no-op."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where collectives' tensors live (the GPU under NCCL)

    @property
    def on(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    # ---- collectives (every rank calls them in the same order)
    def _guard(self, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except (RuntimeError, tdist.DistError) as exc:  # a peer died or timed out
            raise errors.DnaganError(
                f"rank {self.rank}: lost contact with the other training processes ({str(exc).splitlines()[0][:120]}); "
                "another rank failed first, its message is above") from None

    def average_grads(self, params: list) -> None:
        """Gradients of ``params`` summed over ranks and divided by the world size, in one buffer."""
        if not self.on:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        self._guard(tdist.all_reduce, flat)
        flat /= self.world
        i = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[i : i + n].view_as(g))
            i += n

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """In place: the tensor summed over ranks (e.g. a Markov chain's counts)."""
        if self.on:
            self._guard(tdist.all_reduce, t)
        return t

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank."""
        if not self.on:
            return
        with torch.no_grad():
            for t in module.state_dict().values():
                if torch.is_tensor(t):
                    self._guard(tdist.broadcast, t, 0)

    def share(self, obj):
        """Rank 0's picklable object on every rank."""
        if not self.on:
            return obj
        box = [obj if self.main else None]
        self._guard(tdist.broadcast_object_list, box, 0)
        return box[0]

    def sync(self, bad: bool, elapsed: float, device) -> tuple[bool, float]:
        """One small all-reduce every few steps: whether any rank saw a non-finite loss, and rank 0's
        clock (the one the budget is counted on)."""
        if not self.on:
            return bad, elapsed
        t = torch.tensor([float(bad), elapsed if self.main else 0.0], dtype=torch.float64, device=device)
        self._guard(tdist.all_reduce, t, tdist.ReduceOp.MAX)
        return bool(t[0] > 0), float(t[1])

    def agree(self, exc: BaseException | None) -> None:
        """Every rank reports its error (or None); if any rank failed, every rank raises the first
        failing rank's error, so all end together with the same one-line message."""
        if not self.on:
            if exc is not None:
                raise exc
            return
        box = [None] * self.world
        self._guard(tdist.all_gather_object, box, None if exc is None else describe(exc))
        for r, got in enumerate(box):
            if got is not None:
                self.raise_described(got, r)

    def raise_described(self, described: tuple, origin: int):
        """Raise, on this rank, the error ``describe`` gave on rank ``origin``: rank 0 prints it, the
        other ranks end with the same exit code and print nothing."""
        name, text = described
        cls = getattr(errors, name, None)
        cls = cls if isinstance(cls, type) and issubclass(cls, errors.DnaganError) else errors.DnaganError
        err = cls(text if origin == 0 else f"rank {origin}: {text}")
        err.quiet = not self.main
        self.close(together=True)  # every rank is here: leave the group before any process exits
        raise err from None

    @contextlib.contextmanager
    def together(self):
        """Run the block on every rank; an error the user can act on (or a refused read or write) on
        any rank becomes the same error on all of them, raised at the block's end."""
        failed = None
        try:
            yield
        except (errors.DnaganError, OSError) as exc:
            failed = exc
        self.agree(failed)

    def close(self, together: bool = False) -> None:
        """Leave the process group. ``together``: every rank calls this at the same point, so a
        barrier first keeps a rank that is done from exiting while another still uses its
        connections (gloo aborts a process whose peer vanished: measured, 1 run of 4 processes)."""
        if self.on and tdist.is_initialized():
            with contextlib.suppress(Exception):
                if together:
                    tdist.barrier()
                tdist.destroy_process_group()


def describe(exc: BaseException) -> tuple[str, str]:
    """(error class name, one-line message): what crosses between ranks."""
    if isinstance(exc, OSError):
        from utils.cli import describe_oserror

        return "DnaganError", describe_oserror(exc)
    return type(exc).__name__, str(exc)


def setup(device: torch.device) -> tuple[Dist, torch.device]:
    """The process group torchrun asked for (gloo on CPU, NCCL on CUDA), and this rank's device
    (cuda:LOCAL_RANK on a GPU machine)."""
    world = env_world()
    if world == 1:
        return Dist(), device
    rank, local = env_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise errors.ConfigError(f"rank {rank}: LOCAL_RANK {local} but this machine has "
                                     f"{torch.cuda.device_count()} CUDA device(s); lower --nproc_per_node")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not tdist.is_initialized():
        try:
            tdist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT,
                                     **({"device_id": device} if device.type == "cuda" else {}))
        except (RuntimeError, ValueError) as exc:
            raise errors.ConfigError(f"rank {rank}: could not join the torchrun job "
                                     f"({str(exc).splitlines()[0][:160]})") from None
    return Dist(rank=tdist.get_rank(), world=tdist.get_world_size(), local_rank=local,
                device=device if device.type == "cuda" else torch.device("cpu")), device
