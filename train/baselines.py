"""The Markov baselines every judged figure is read against, trained on a reference's own training
split through the one engine (compare_models.py's rows, analyze's judge power)."""
from __future__ import annotations

import logging

from models.markov import PHASED_SETS

# name -> the --set overrides of --model markov: the order-5 chain, the phased mixture (chosen by
# held-out NLL, stop 45) and the phased HMM (its state may switch at any base)
BASELINES = {
    "markov-5 baseline": ("model.order=5",),
    "markov phased baseline": ("model.order=5", *PHASED_SETS),
    "markov phased HMM baseline": ("model.order=5", *PHASED_SETS, "model.hmm=true"),
}


def fit_baseline(data, name: str = "markov-5 baseline"):
    """The Ensemble of baseline ``name`` (BASELINES) trained on ``data``'s training split (a
    utils.sequences.SequenceData), nothing written and nothing logged below a warning."""
    from models.registry import get_family
    from train.engine import train
    from utils.config import parse_set, resolve

    fam = get_family("markov")
    cfg = resolve("markov", fam.Config, {"data": {"path": data.source, "seq_len": data.seq_len}},
                  parse_set([*BASELINES[name], "train.eval_samples=100"]))
    log = logging.getLogger("dnagan")
    level = log.level
    log.setLevel(max(logging.WARNING, log.getEffectiveLevel()))  # the chain's epoch lines are not the user's run's
    try:
        return train(cfg, data=data, save=False).ensemble
    finally:
        log.setLevel(level)
