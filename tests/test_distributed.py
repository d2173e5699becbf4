"""torchrun on CPU: gloo processes spawned from the test, each running main([...]) as one rank
(tests/dist_worker.py sets what torchrun sets), plus one run through torchrun itself."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import random_dna
from dist_worker import run_rank
from main import main

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--seq_len", "24", "--batch", "8", "--set", "train.eval_samples=40", "--set", "train.sample_every=0",
        "--set", "train.save_every=0"]
FAMILY_SETS = {
    # G-only steps (odd steps: no D, MLE only) and D+G steps
    "stacked": ["--set", "model.d_model=16", "--set", "model.n_heads=2", "--set", "model.g_layers=1",
                "--set", "model.d_layers=1", "--set", "model.adv_weight=0.1", "--set", "model.adv_every=2",
                "--set", "model.warmup_steps=0", "--set", "train.steps_per_epoch=4", "--set", "model.ngram_refit=2000"],
    # D-only steps (warm-up without an MLE term), then D+G
    "gumbel": ["--set", "model.hidden=16", "--set", "model.adv_weight=1", "--set", "model.mle_weight=0",
               "--set", "model.adv_every=1", "--set", "model.warmup_steps=2", "--set", "train.steps_per_epoch=4"],
    # G-only (MLE pretraining), D-only (D pretraining), then policy-gradient rounds with rollouts
    "seqgan": ["--set", "model.hidden=8", "--set", "model.emb=8", "--set", "model.rollout_num=2",
               "--set", "model.d_emb=4", "--set", "model.d_filter_sizes=[2, 3]", "--set", "model.d_num_filters=[4, 4]",
               "--set", "model.pre_epochs=1", "--set", "model.dis_pre_epochs=1", "--set", "model.total_batch=2",
               "--set", "model.rounds_per_epoch=2", "--set", "model.pg_batch=4", "--set", "model.mle_steps=1",
               "--set", "model.d_steps=1", "--set", "train.steps_per_epoch=3", "--epochs", "3"],
    "masked": ["--set", "model.d_model=16", "--set", "model.n_heads=2", "--set", "model.n_layers=1",
               "--set", "train.steps_per_epoch=4"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(tmp_path, argvs: list, patches=(), timeout=120.0) -> tuple[list, float]:
    """Run len(argvs) ranks (argvs[r] is rank r's command line); returns their results and the seconds
    until the last one ended."""
    out = tmp_path / f"ranks{time.monotonic_ns()}"
    out.mkdir()
    ctx = mp.get_context("spawn")
    port, world = free_port(), len(argvs)
    env = {"OMP_NUM_THREADS": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        procs = [ctx.Process(target=run_rank, args=(r, world, port, argvs[r], str(out), list(patches)))
                 for r in range(world)]
        t = time.time()
        for p in procs:
            p.start()
        for p in procs:
            p.join(max(1.0, timeout - (time.time() - t)))
        seconds = time.time() - t
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        p.kill() if p.is_alive() else None
    assert not hung, f"ranks {hung} still running after {timeout} s"
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)], seconds


def train_args(family, genome, run, *extra):
    return (["--mode", "train", "--model", family, "--data", str(genome), "--epochs", "2", "--run_dir", f"runs/{run}",
             "--checkpoint_dir", f"ck_{run}"] + TINY + FAMILY_SETS.get(family, []) + list(extra))


@pytest.mark.parametrize("family", ["stacked", "gumbel", "seqgan", "masked"])
def test_two_ranks_keep_identical_weights_on_disjoint_windows(family, tmp_path):
    genome = tmp_path / "random.fasta"  # every window distinct, so a window's bases name it
    genome.write_text(f">r1\n{random_dna(3000, 1)}\n>r2\n{random_dna(3000, 2)}\n")
    args = train_args(family, genome, family)
    res, _ = spawn(tmp_path, [args, args], patches=["record"])
    assert [r["code"] for r in res] == [0, 0], [r["stderr"][-400:] for r in res]
    assert res[1]["stderr"] == ""  # rank 1 logs nothing but errors
    r0, r1 = res[0]["records"], res[1]["records"]
    assert len(r0) == len(r1) > 0
    kinds = set()
    for a, b in zip(r0, r1):
        assert a["stepped"] == b["stepped"] and a["phase"] == b["phase"]
        # after every step, every network is bit-identical on both ranks
        assert a["digest"] == b["digest"], (family, a["step"], a["stepped"])
        # each rank read its own windows of the global batch
        assert not set(a["rows"]) & set(b["rows"]) and len(a["rows"]) == len(b["rows"]) == 8
        kinds.add(tuple(a["stepped"]))
    expected = {"stacked": {("g",), ("d", "g")}, "gumbel": {("d",), ("d", "g")},
                "seqgan": {("g",), ("d",), ("d", "g", "pg")}, "masked": {("g",)}}[family]
    assert expected <= kinds, kinds
    # the checkpoint (rank 0's alone) generates in one plain process
    ck = Path(f"ck_{family}/{family}_best.pt")
    assert ck.exists() and not list(Path(f"ck_{family}").glob("*.tmp*"))
    assert main(["--mode", "gen", "--checkpoint", str(ck), "--n", "6", "--output", f"{family}.fasta"]) == 0
    assert Path(f"{family}.fasta").read_text().count(">") == 6
    epochs = int(args[len(args) - 1 - args[::-1].index("--epochs") + 1])
    assert int(Path(f"runs/{family}/metrics.csv").read_text().splitlines()[-1].split(",")[0]) == epochs


def test_two_ranks_at_batch_b_equal_one_rank_at_2b(genome, tmp_path):
    """stacked, MLE steps with the generator's noise fixed (the engine, not the noise, is under
    test): 2 processes x batch 8 and 1 process x batch 16 give the same weights after 3 steps, to
    float32 round-off (the sums over ranks are added in another order): |difference| <= 1e-5."""
    sets = ["--set", "model.d_model=16", "--set", "model.n_heads=2", "--set", "model.g_layers=1",
            "--set", "model.ngram_refit=0", "--set", "train.steps_per_epoch=3", "--epochs", "1"]
    base = ["--mode", "train", "--model", "stacked", "--data", genome, "--seq_len", "24",
            "--set", "train.eval_samples=20"] + sets
    two, _ = spawn(tmp_path, [base + ["--batch", "8", "--checkpoint_dir", "ck2", "--run_dir", "runs/two"]] * 2,
                   patches=["fixed_noise"])
    one, _ = spawn(tmp_path, [base + ["--batch", "16", "--checkpoint_dir", "ck1", "--run_dir", "runs/one"]],
                   patches=["fixed_noise"])
    assert [r["code"] for r in two + one] == [0, 0, 0]
    a = torch.load("ck2/stacked_last.pt", weights_only=True)["members"][0]
    b = torch.load("ck1/stacked_last.pt", weights_only=True)["members"][0]
    start = torch.load("ck1/stacked_last.pt", weights_only=True)
    diffs = {k: float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point()}
    assert max(diffs.values()) <= 1e-5, sorted(diffs.items(), key=lambda kv: -kv[1])[:3]
    assert start["steps"] == [3]
    # and the weights did move (the comparison is not between two untouched initialisations)
    from models.registry import get_family
    from train.engine import load_ensemble

    ens, _ = load_ensemble("ck1/stacked_last.pt", device="cpu")
    torch.manual_seed(42)
    fresh = get_family("stacked").build(ens.cfg, ens.stats).state_dict()
    assert max(float((fresh[k] - b[k]).abs().max()) for k in fresh if fresh[k].is_floating_point()) > 1e-4


def test_markov_counts_are_summed_over_ranks(genome, tmp_path):
    base = ["--mode", "train", "--model", "markov", "--data", str(genome), "--seq_len", "24", "--epochs", "1",
            "--order", "3", "--batch", "5000", "--set", "train.eval_samples=20"]
    two, _ = spawn(tmp_path, [base + ["--checkpoint_dir", "m2", "--run_dir", "runs/m2"]] * 2)
    assert main(base + ["--checkpoint_dir", "m1", "--run_dir", "runs/m1"]) == 0
    assert [r["code"] for r in two] == [0, 0]
    c2 = torch.load("m2/markov_last.pt", weights_only=True)["members"][0]["chain.counts"]
    c1 = torch.load("m1/markov_last.pt", weights_only=True)["members"][0]["chain.counts"]
    assert c1.sum() > 0 and torch.equal(c1, c2)


@pytest.mark.parametrize("hmm", [False, True], ids=["mixture", "hmm"])
def test_phased_markov_sums_its_em_counts_over_ranks(genome, tmp_path, hmm):
    base = ["--mode", "train", "--model", "markov", "--data", str(genome), "--seq_len", "24", "--epochs", "3",
            "--order", "1", "--batch", "5000", "--set", "model.period=3", "--set", "model.components=2",
            "--set", "train.eval_samples=20", "--set", f"model.hmm={str(hmm).lower()}"]
    two, _ = spawn(tmp_path, [base + ["--checkpoint_dir", "p2", "--run_dir", "runs/p2"]] * 2)
    assert main(base + ["--checkpoint_dir", "p1", "--run_dir", "runs/p1"]) == 0
    assert [r["code"] for r in two] == [0, 0]
    m2 = torch.load("p2/markov_last.pt", weights_only=True)["members"][0]
    m1 = torch.load("p1/markov_last.pt", weights_only=True)["members"][0]
    # every training window's posterior weight is counted once, on whichever rank holds it: summed over
    # the ranks the totals are the single process's (each rank alone holds half)
    windows = float(m1["chain.mix"].sum())
    assert windows > 100 and float(m2["chain.mix"].sum()) == pytest.approx(windows)
    assert float(m2["chain.counts"].sum()) == pytest.approx(float(m1["chain.counts"].sum()))
    assert float(m2["chain.prev_mix"].sum()) == pytest.approx(windows)  # the E-step read the summed counts
    if hmm:  # the expected transitions too: 22 a window (24 bases, order 1: 23 positions with a context)
        assert float(m2["chain.trans"].sum()) == pytest.approx(22 * windows)


def test_bad_data_on_one_rank_ends_every_rank_with_its_message(genome, tmp_path):
    bad = tmp_path / "bad.fasta"
    bad.write_text(">r1\nACGTACGTNNACGT\n>r2\nACGT1ACGT\n")
    args = train_args("gumbel", genome, "bad")
    res, seconds = spawn(tmp_path, [args, [str(bad) if a == str(genome) else a for a in args]], timeout=60)
    assert [r["code"] for r in res] == [2, 2]
    err0 = [line for line in res[0]["stderr"].splitlines() if line.startswith("error")]
    assert len(err0) == 1 and err0[0].startswith("error: rank 1: ") and "bad.fasta: record 'r2', position 5" in err0[0]
    assert "Traceback" not in res[0]["stderr"] + res[1]["stderr"] and res[1]["stderr"] == ""
    assert seconds < 40


def test_nan_on_one_rank_stops_every_rank(genome, tmp_path):
    args = train_args("gumbel", genome, "nan")
    res, seconds = spawn(tmp_path, [args, args], patches=["nan_on_rank1"], timeout=60)
    assert [r["code"] for r in res] == [2, 2]
    line = res[0]["stderr"].strip().splitlines()[-1]
    assert line.startswith("error: rank 1: epoch 1: g_loss is nan") and "training stopped" in line
    assert "Traceback" not in res[0]["stderr"] + res[1]["stderr"]
    assert seconds < 40


def test_resume_with_another_number_of_processes(genome, tmp_path):
    args = train_args("stacked", genome, "res")
    args[args.index("--epochs") + 1] = "1"
    res, _ = spawn(tmp_path, [args, args])
    assert [r["code"] for r in res] == [0, 0]
    last = "ck_res/stacked_last.pt"
    assert main(["--mode", "train", "--resume", last, "--epochs", "2"]) == 0  # one process
    assert torch.load(last, weights_only=True)["epoch"] == 2
    res, _ = spawn(tmp_path, [["--mode", "train", "--resume", last, "--epochs", "3"]] * 2)
    assert [r["code"] for r in res] == [0, 0], res[0]["stderr"][-300:]
    ck = torch.load(last, weights_only=True)
    assert ck["epoch"] == 3 and ck["steps"] == [12]


def test_torchrun_itself(genome, tmp_path):
    """The command README gives, as typed (one process per rank, rank 0 alone prints)."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this python")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", str(ROOT / "main.py")] + [
        str(a) for a in train_args("gumbel", genome, "tr")]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert p.returncode == 0, p.stderr[-800:]
    assert p.stdout.count("trained gumbel for 2 epoch(s)") == 1
    assert "torchrun: 2 processes (gloo)" in p.stderr and "global batch of 16" in p.stderr
    assert Path("ck_tr/gumbel_best.pt").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("family", ["stacked", "gumbel", "seqgan", "masked", "markov"])
@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_cuda_trains_and_generates(family, amp, genome, tmp_path):
    run = f"{family}_{amp}"
    assert main(train_args(family, genome, run, "--device", "cuda", "--amp", amp)) == 0
    assert main(["--mode", "gen", "--checkpoint", f"ck_{run}/{family}_best.pt", "--n", "8", "--device", "cuda",
                 "--output", f"{run}.fasta"]) == 0


@pytest.mark.parametrize("family", ["stacked", "gumbel", "seqgan", "masked"])
def test_bf16_autocast_trains_on_cpu(family, genome):
    run = f"{family}_bf16"
    assert main(train_args(family, genome, run, "--amp", "bf16", "--device", "cpu")) == 0
    ck = torch.load(f"ck_{run}/{family}_last.pt", weights_only=True)
    assert ck["config"]["train"]["amp"] == "bf16"
    assert all(t.dtype != torch.bfloat16 for t in ck["members"][0].values())  # weights stay float32


def test_amp_auto_takes_bf16_on_a_gpu_only_for_long_windows(monkeypatch):
    from train.engine import AUTO_BF16_MIN_LEN, resolve_amp

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_amp("auto", gpu, 70) is None  # measured slower at 70 bp on an H200
    assert resolve_amp("auto", gpu, 500) is torch.bfloat16
    assert resolve_amp("auto", gpu, AUTO_BF16_MIN_LEN) is torch.bfloat16
    assert resolve_amp("auto", gpu, AUTO_BF16_MIN_LEN - 1) is None
    assert resolve_amp("auto", cpu, 1000) is None
    assert resolve_amp("bf16", gpu, 70) is torch.bfloat16  # asked for, given
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_amp("auto", gpu, 500) is None


def test_compile_wraps_every_network_and_keeps_checkpoints_plain(genome, monkeypatch):
    """--compile reaches nn.Module.compile, with its mode, for the networks the engine calls and the
    transformers inside the generator (driven through coarse/refine); the compiled run trains,
    its checkpoint's keys are the plain ones (no _orig_mod) and it generates. The backend is swapped
    for dynamo's "eager" one so the test traces the real forwards without minutes of C++ codegen."""
    calls = []
    real = torch.nn.Module.compile

    def traced(self, *args, **kwargs):
        calls.append((type(self).__name__, kwargs.get("mode")))
        return real(self, backend="eager")

    monkeypatch.setattr(torch.nn.Module, "compile", traced)
    assert main(train_args("stacked", genome, "comp", "--compile", "reduce-overhead")) == 0
    ck = torch.load("ck_comp/stacked_last.pt", weights_only=True)
    nets = ck["members"][0]
    assert not any("_orig_mod" in k for k in nets)
    assert ck["config"]["train"]["compile"] == "reduce-overhead"
    names = [name for name, _ in calls]
    assert names.count("Discriminator") == 2  # D1, D2
    assert {"TransformerStack", "CausalTransformer"} <= set(names)  # the generator's stage I and II bodies
    assert "StackedGenerator" not in names  # no forward of its own: its blocks are compiled instead
    assert {mode for _, mode in calls} == {"reduce-overhead"}
    assert main(["--mode", "gen", "--checkpoint", "ck_comp/stacked_best.pt", "--n", "4", "--output", "comp.fasta"]) == 0
    assert Path("comp.fasta").read_text().count(">") == 4


def test_cuda_graph_modes_hand_back_copies_of_the_graph_buffers(monkeypatch):
    """Under --compile reduce-overhead a network's output lives in a buffer the next replay of its CUDA
    graph overwrites (D on real, then on fake windows). The compiled call is wrapped so callers get
    copies: here a stand-in "graph" that reuses one buffer, called twice before the first result is read."""
    from train.engine import _cloning

    buf = torch.zeros(3)

    def replay(x):  # writes into the same static buffer every call, as a CUDA graph does
        buf.copy_(x)
        return {"logits": buf, "aux": [buf * 1, 7]}

    wrapped = _cloning(replay)
    first = wrapped(torch.ones(3))
    second = wrapped(torch.full((3,), 2.0))
    assert torch.equal(first["logits"], torch.ones(3)) and torch.equal(second["logits"], torch.full((3,), 2.0))
    assert first["aux"][1] == 7
    unwrapped = replay(torch.ones(3))
    replay(torch.full((3,), 2.0))
    assert torch.equal(unwrapped["logits"], torch.full((3,), 2.0))  # without the copy the first result is lost

    # the engine wraps every compiled module in the CUDA graph modes, and only in those: a module whose
    # forward writes into and returns one buffer of its own, as a graph replay does
    real = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: real(self, backend="eager"))
    from train.engine import compile_networks

    class Replay(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("out", torch.zeros(3))

        def forward(self, x):
            self.out.copy_(x)
            return self.out

    Replay.__module__ = "models.fake"  # compile_networks compiles modules of models.* only
    for mode, copies in (("default", False), ("reduce-overhead", True), ("max-autotune", True)):
        D = Replay()
        assert compile_networks([{"D": D}], mode) == 1
        first = D(torch.ones(3))
        D(torch.full((3,), 2.0))
        assert torch.equal(first, torch.ones(3)) == copies, mode


def test_an_unknown_compile_mode_is_a_one_line_error(genome, capsys):
    assert main(train_args("gumbel", genome, "badc", "--set", "train.compile=fast")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: train.compile must be one of off, default, reduce-overhead, max-autotune")


def test_fp16_on_a_cpu_is_a_one_line_error(genome, capsys):
    assert main(train_args("gumbel", genome, "fp16", "--amp", "fp16", "--device", "cpu")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: --amp fp16 is for CUDA devices; on a CPU use --amp bf16 or off"
