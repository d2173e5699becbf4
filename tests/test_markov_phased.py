"""The phased Markov mixture (models/markov.py): codon-phase transitions and several chains, by EM; and
the phased HMM, whose hidden state may switch at any base."""
import itertools

import numpy as np
import pytest
import torch

from main import main
from train import checkpoint as ckpt_io
from train.engine import load_ensemble, train
from utils.config import parse_set, resolve
from models.registry import get_family
from utils.sequences import read_records

# phase 0 writes mostly A, phase 1 mostly C, phase 2 mostly G: a period-3 source with no order-0 signal
PATTERN = "ACG"


def periodic_dna(n: int, seed: int, pattern: str = PATTERN, p: float = 0.8) -> str:
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n):
        want = "ACGT".index(pattern[t % 3])
        probs = np.full(4, (1 - p) / 3)
        probs[want] = p
        out.append("ACGT"[rng.choice(4, p=probs)])
    return "".join(out)


def fasta(path, records):
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in records))
    return path


@pytest.fixture
def periodic(tmp_path):
    return fasta(tmp_path / "periodic.fasta", [(f"r{i}", periodic_dna(3000, i)) for i in range(8)])


def cfg_for(path, *sets):
    return resolve("markov", get_family("markov").Config, {"data": {"path": str(path)}},
                   parse_set(["data.seq_len=30", "train.batch=64", "train.eval_samples=50", *sets]))


def in_phase(seqs: np.ndarray, pattern: str = PATTERN) -> float:
    """Mean over sequences of the best fraction of bases that follow the pattern at one of its 3 phases."""
    want = np.array(["ACGT".index(c) for c in pattern])
    t = np.arange(seqs.shape[1])
    return float(np.mean([max(np.mean(s == want[(t + f) % 3]) for f in range(3)) for s in seqs]))


def test_the_phased_chain_learns_a_codon_phase_that_a_plain_chain_cannot(periodic, tmp_path):
    plain = train(cfg_for(periodic, "model.order=0", f"train.checkpoint_dir={tmp_path}/a", f"train.run_dir={tmp_path}/ra"))
    phased = train(cfg_for(periodic, "model.order=0", "model.period=3", "model.em_iters=8",
                           f"train.checkpoint_dir={tmp_path}/b", f"train.run_dir={tmp_path}/rb"))
    assert len(plain.history) == 1 and len(phased.history) == 8  # the plan: one count, or em_iters EM iterations
    # held-out: the source's entropy is 0.8 nats/base with the phase known, log 4 = 1.386 without
    assert phased.history[-1]["val_nll"] < plain.history[-1]["val_nll"] - 0.4
    # EM's training objective falls from the first iteration (random posteriors) to the last
    nll = [r["nll"] for r in phased.history]
    assert nll[-1] < nll[1] - 0.1 and nll[1] <= nll[0] + 1e-9
    a = plain.ensemble.sample(300, seed=1).numpy()
    b = phased.ensemble.sample(300, seed=1).numpy()
    assert in_phase(b) > 0.7 and in_phase(a) < 0.5  # the source writes 0.8 in phase; order 0 writes ~1/3 + luck


@pytest.mark.parametrize("hmm", [False, True], ids=["mixture", "hmm"])
def test_phased_checkpoint_reloads_to_identical_samples_and_resumes_exactly(periodic, tmp_path, hmm):
    sets = ["model.order=2", "model.period=3", "model.components=3", "model.min_cell_bases=0", "train.bagging=true",
            "train.n_models=2", f"model.hmm={str(hmm).lower()}"]
    full = train(cfg_for(periodic, *sets, "train.epochs=4", f"train.checkpoint_dir={tmp_path}/a",
                         f"train.run_dir={tmp_path}/ra"))
    ens, ck = load_ensemble(full.last_path)
    assert torch.equal(full.ensemble.sample(50, seed=3), ens.sample(50, seed=3))
    assert ck["config"]["model"]["period"] == 3 and ck["members"][0]["chain.counts"].shape == (3, 3, 4 ** 3)
    part = train(cfg_for(periodic, *sets, "train.epochs=2", f"train.checkpoint_dir={tmp_path}/b",
                         f"train.run_dir={tmp_path}/rb"))
    resumed = train(cfg_for(periodic, *sets, "train.epochs=4"), resume=str(part.last_path))
    a, b = ckpt_io.load(full.last_path), ckpt_io.load(resumed.last_path)
    for ma, mb in zip(a["members"], b["members"]):
        assert all(torch.allclose(ma[k], mb[k], rtol=1e-12, atol=0) for k in ma), [k for k in ma if not torch.equal(ma[k], mb[k])]
    assert [r["val_nll"] for r in full.history] == pytest.approx([r["val_nll"] for r in resumed.history], rel=1e-12)
    # a prompt fixes the first bases, and the hidden phase follows it
    p = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    out = ens.sample(200, 30, seed=0, prompt=p)
    want = torch.tensor([0, 1, 2])[torch.arange(7, 30) % 3]
    assert (out[:, :7] == p).all() and (out[:, 7:] == want).float().mean() > 0.6


def test_labelled_phased_mixture_writes_each_labels_phase_pattern(tmp_path, capsys):
    a = fasta(tmp_path / "acg.fasta", [(f"a{i}", periodic_dna(1500, i, "ACG")) for i in range(6)])
    b = fasta(tmp_path / "tta.fasta", [(f"b{i}", periodic_dna(1500, 50 + i, "TTG")) for i in range(6)])
    assert main(["--mode", "train", "--model", "markov", "--data", str(a), str(b), "--seq_len", "30", "--order", "1",
                 "--set", "model.period=3", "--set", "model.components=2", "--set", "model.em_iters=6",
                 "--set", "train.eval_samples=20", "--run_dir", "runs/p"]) == 0
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/markov_best.pt", "--n", "100", "--label", "all",
                 "--output", "all.fasta"]) == 0
    recs = read_records("all.fasta", titles=True)
    for lab, pattern in (("acg", "ACG"), ("tta", "TTG")):
        seqs = np.array([["ACGT".index(c) for c in s] for _, title, s in recs if title.endswith(f"label={lab}")])
        assert len(seqs) == 100 and in_phase(seqs, pattern) > 0.7, lab


def test_the_phased_mixture_needs_a_prior_for_unseen_contexts(periodic, capsys):
    assert main(["--mode", "train", "--model", "markov", "--data", str(periodic), "--set", "model.period=3",
                 "--set", "model.shrink=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: model.shrink must be > 0 for the phased mixture") and "\n" not in err


def test_the_phased_mixtures_order_comes_down_to_its_data():
    from models.markov import MarkovConfig

    c = MarkovConfig(order=5, period=3, components=7)  # 21 states, at least 50 training bases a count
    assert c.for_data(1_680_000)[0].order == 4  # S. suis: 78 bases a count at order 4, 19.5 at 5
    new, note = c.for_data(135_000)  # phage T4
    assert new.order == 2 and note.startswith("model.order 5 -> 2: 135,000 training bases")
    assert c.for_data(10**9) == (c, None)
    assert c.for_data(100)[0].order == 0
    plain = MarkovConfig(order=5)
    assert plain.for_data(1000) == (plain, None)  # the plain chain keeps its order
    assert MarkovConfig(order=5, period=3, components=7, min_cell_bases=0).for_data(1000)[0].order == 5


# --- the phased HMM (model.hmm): the hidden (chain, phase) may switch at any base --------------------


def segmented_dna(n: int, seed: int, mean: int = 60) -> str:
    """Stretches of the ACG and the TTG period-3 sources in turn, of geometric lengths (mean `mean`): a
    window may cross from one to the other, as a window of a genome crosses a gene's end."""
    rng = np.random.default_rng(seed)
    out, pat = [], 0
    while sum(map(len, out)) < n:
        out.append(periodic_dna(int(rng.geometric(1 / mean)), int(rng.integers(1 << 30)), ("ACG", "TTG")[pat]))
        pat ^= 1
    return "".join(out)[:n]


def test_the_phased_hmm_follows_a_switch_inside_a_window_that_the_mixture_cannot(tmp_path):
    path = fasta(tmp_path / "seg.fasta", [(f"r{i}", segmented_dna(3000, i)) for i in range(8)])
    sets = ["model.order=0", "model.period=3", "model.components=2", "model.em_iters=10"]
    mix = train(cfg_for(path, *sets, f"train.checkpoint_dir={tmp_path}/a", f"train.run_dir={tmp_path}/ra"))
    hmm = train(cfg_for(path, *sets, "model.hmm=true", "model.segment=50", f"train.checkpoint_dir={tmp_path}/b",
                        f"train.run_dir={tmp_path}/rb"))
    assert hmm.history[-1]["val_nll"] < mix.history[-1]["val_nll"] - 0.04  # measured 0.838 against 0.923
    nll = [r["nll"] for r in hmm.history]
    assert nll[-1] < nll[1] - 0.1 and all(b <= a + 1e-9 for a, b in zip(nll[1:], nll[2:]))  # Baum-Welch: monotone

    def switched(ens) -> float:  # samples whose first and last 30 bases follow different patterns
        s = ens.sample(300, 120, seed=2).numpy()
        first = [in_phase(s[i : i + 1, :30], "ACG") > in_phase(s[i : i + 1, :30], "TTG") for i in range(300)]
        last = [in_phase(s[i : i + 1, -30:], "ACG") > in_phase(s[i : i + 1, -30:], "TTG") for i in range(300)]
        return float(np.mean(np.array(first) != np.array(last)))

    # the source switches between bases 30 and 90 in about 1 - exp(-60/60) of windows (an odd count of switches: ~0.43)
    assert switched(hmm.ensemble) > 0.25 and switched(mix.ensemble) < 0.1


def _hmm(order=1, period=2, components=2, seed=0):
    from models.markov import PhasedHMM

    torch.manual_seed(seed)
    m = PhasedHMM(order, 1.0, period, components, 4.0, 5.0).double()
    m.counts.copy_(torch.rand_like(m.counts) * 20)
    m.mix.copy_(torch.rand_like(m.mix) + 0.1)
    m.trans.copy_(torch.rand_like(m.trans) * 30)
    return m


def test_the_hmms_forward_backward_is_the_sum_over_every_state_path():
    m = _hmm()
    x = torch.randint(4, (3, 6))  # order 1: 5 positions with a context, 4 states: 4^5 paths
    logT = m.log_transition(m.counts).view(4, -1)[:, m.kmer_index(x, 2)]  # (S, B, T)
    logA, logpi = m.log_trans(m.trans), m.log_mix(m.mix).view(-1)
    paths = torch.tensor(list(itertools.product(range(4), repeat=5)))
    t = torch.arange(5)
    lp = (logpi[paths[:, 0]][:, None] + logA[paths[:, :-1], paths[:, 1:]].sum(1)[:, None]
          + logT[paths[:, None, :], torch.arange(3)[None, :, None], t].sum(-1))  # (paths, B)
    assert torch.allclose(m.loglik(x), torch.logsumexp(lp, 0), atol=1e-10)
    E, A, alpha, c, _ = m._forward(x, m.counts, m.mix, m.trans)
    gamma, xi = m._backward(E, A, alpha, c)
    post = torch.softmax(lp, 0)  # each path's posterior, per window
    for pos in range(5):
        want = torch.stack([post[paths[:, pos] == s].sum(0) for s in range(4)], 1)
        assert torch.allclose(gamma[pos], want, atol=1e-10)  # gamma is (T, B, S)
    want = torch.zeros(4, 4, dtype=torch.float64)
    for pos in range(4):
        want.index_put_((paths[:, pos], paths[:, pos + 1]), post.sum(1), accumulate=True)
    assert torch.allclose(xi, want, atol=1e-9)


def test_the_hmms_reused_work_space_gives_each_batch_its_own_answer():
    """The forward-backward's (T, B, S) work space is kept from one batch to the next: a batch after
    a larger one, of another length, or in chunks reads as it does in a fresh model."""
    m, fresh = _hmm(order=2, period=3, components=2), _hmm(order=2, period=3, components=2)
    big, short = torch.randint(4, (9, 40)), torch.randint(4, (4, 12))
    want_big, want_short = fresh.loglik(big), _hmm(order=2, period=3, components=2).loglik(short)
    assert torch.allclose(m.loglik(big), want_big, atol=1e-12)
    assert torch.allclose(m.loglik(short), want_short, atol=1e-12)
    assert torch.allclose(m.loglik(big, chunk=2), want_big, atol=1e-12)
    assert torch.allclose(torch.cat([m.loglik(big[i : i + 1]) for i in range(9)]), want_big, atol=1e-12)
    m._backward(*m._forward(big, m.counts, m.mix, m.trans)[:4])  # leaves the big batch's beta behind
    for model in (m, fresh):  # posteriors and expected transitions of the short batch
        model.got = [t.clone() for t in model._backward(*model._forward(short, model.counts, model.mix, model.trans)[:4])]
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(m.got, fresh.got))


def test_the_hmm_that_never_switches_is_the_phased_mixture():
    from models.markov import PhasedMixture

    m = _hmm(order=2, period=3, components=2)
    m.trans.zero_()
    m.trans[torch.arange(6), m.advance("cpu")] = 1e15  # only the successor inside the chain
    mix = PhasedMixture(2, 1.0, 3, 2, 4.0).double()
    mix.counts.copy_(m.counts)
    # the mixture's mix is by (chain, the window's phase at base 0); the HMM's by the state at base k = 2
    for ch, ph in itertools.product(range(2), range(3)):
        mix.mix[ch, ph] = m.mix[ch, (ph + 2) % 3]
    x = torch.randint(4, (5, 40))
    assert torch.allclose(m.loglik(x), mix.loglik(x), atol=1e-6)


def test_the_hmm_needs_states_to_switch_between(periodic, capsys):
    assert main(["--mode", "train", "--model", "markov", "--data", str(periodic), "--set", "model.hmm=true"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: model.hmm needs hidden states to switch between") and "\n" not in err
