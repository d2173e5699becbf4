"""Config flow: dataclass defaults <- configs/<family>.yaml <- CLI flags <- --set key=value.

Everything is resolved into frozen dataclasses; unknown keys and wrong types are ConfigErrors.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from utils import domains
from utils.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def option(default, help: str = "", flag=None, domain=None):
    """A config field with its help text; ``flag`` (a name or a tuple of aliases, e.g. "--order")
    makes it a command-line flag of the family that owns the config. main.py reads these.
    ``domain`` (utils.domains) narrows the type's default domain, e.g. POSITIVE_INT."""
    flags = (flag,) if isinstance(flag, str) else tuple(flag or ())
    return field(default=default, metadata={"help": help, "flags": flags, "domain": domain})


@dataclass(frozen=True)
class Flag:
    dest: str  # the config field (model.<dest>)
    names: tuple  # "--order", or aliases such as ("--skip-gen-pretrain", "--skip_gen_pretrain")
    type: type
    default: Any
    help: str
    domain: Any = None  # utils.domains.Domain for numeric flags

    @property
    def parse(self):
        """argparse type: the domain (parsed and checked) for numbers, else the plain type."""
        return self.domain or self.type


def flags_of(cls) -> list[Flag]:
    """The command-line flags a family's Config declares (fields made with ``option(flag=...)``)."""
    hints = typing.get_type_hints(cls)
    return [Flag(f.name, f.metadata["flags"], hints[f.name], f.default, f.metadata.get("help", ""),
                 field_domain("model", f, hints[f.name]))
            for f in dataclasses.fields(cls) if f.metadata.get("flags")]


def _base_type(typ):
    if typing.get_origin(typ) is typing.Union:
        inner = [a for a in typing.get_args(typ) if a is not type(None)]
        return inner[0] if inner else typ
    return typ


def field_domain(section: str, f: dataclasses.Field, typ):
    """The domain a config field's values must lie in (None for non-numeric fields)."""
    return domains.of(section, f.name, _base_type(typ), f.metadata.get("domain"))


@dataclass(frozen=True)
class DataConfig:
    path: str = "data/example_genome.fasta"  # FASTA/GenBank/text, optionally .gz; or a list of files (labels)
    seq_len: int = 70  # window length in bases
    stride: int = 0  # window step for training windows; 0 = seq_len (no overlap)
    val_fraction: float = 0.2  # fraction held out as interleaved blocks (or whole records)
    block_size: int = 10_000  # split block size in bases for long records
    max_sequences: int = 0  # cap on training windows; 0 = all
    crop_records: bool = False  # one record = one sequence, cropped to seq_len
    synthetic: int = 0  # > 0: train on this many uniformly random windows instead of a file
    label_pattern: str = ""  # regex over each header whose first group is the record's label (utils/labels.py)
    labels: str = ""  # TSV of record id <TAB> label; default: label= in the headers, if every record has one
    select_apart: bool = False  # deal the held-out blocks alternately into a half that picks best.pt (validation
                                # NLL, early stopping) and a half that analysis judges; False: the blocks do both


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 50
    batch: int = 64
    lr_g: float = 1e-4  # learning rate of the "g" parameter group (generator / model)
    lr_d: float = 1e-4  # learning rate of the "d" parameter group (discriminator)
    betas: tuple = (0.5, 0.999)  # Adam betas
    weight_decay: float = 0.0
    lr_gamma: float = 0.95  # ExponentialLR gamma, stepped each epoch
    lr_clock: bool = False  # under --budget: the decay follows the clock, lr = lr0 * gamma^(epochs x budget spent),
                            # so the epoch plan's whole decay fits the budget (budgeted training, Li et al. 2020)
    clip_norm: float = 1.0  # gradient clipping max_norm; 0 = off
    ema: float = 0.0  # decay of a moving average of the weights that is validated, saved and sampled; 0 = off
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "auto"  # mixed precision: auto (bf16 on CUDA from 256 bp, else off) | bf16 | fp16 | off
    label_balance: float = 0.0  # labelled data: label l's windows make a share ~ n_l^(1 - x) of every pass
                                # (0 = as in the data; 1 = every label equally often, small ones repeated)
    compile: str = "off"  # torch.compile each network's forward: off | default | reduce-overhead | max-autotune
    sync_every: int = 16  # steps between reads of the step figures (NaN check, and the budget clock under torchrun)
    steps_per_epoch: int = 0  # cap on batches per epoch; 0 = one pass over the data
    save_every: int = 10  # checkpoints/<model>_epoch{N}.pt every N epochs; 0 = off
    sample_every: int = 5  # sample FASTA into the run's sequences/ every N epochs; 0 = off
    eval_samples: int = 500  # sequences generated per epoch for monitoring and validation
    eval_bases: int = 35000  # ... at most this many bases (500 x 70 bp): fewer sequences at length
    # the per-epoch C2ST of the monitoring sample (train/judging.py): epochs are judged while the judging
    # takes at most this share of the run's time; 0 = off
    monitor_c2st: float = 0.05
    early_stopping: bool = False
    patience: int = 10  # epochs without validation improvement before stopping
    bagging: bool = False  # bootstrap-resampled ensemble members
    n_models: int = 1
    target_gc: Optional[float] = None  # None = the training data's GC
    balance_weight: float = 0.0  # weight w of the GC-balanced term, (1-w) CE + w penalty
    target_gc_weight: float = 0.05  # balance_weight used when target_gc is given and balance_weight is 0
    curriculum: bool = False  # grow length, lower balance weight, anneal temperature
    curriculum_start: int = 0  # first training length; 0 = auto (50, or seq_len/10 if short)
    curriculum_step: int = 0  # length added per stage; 0 = auto (same rule)
    curriculum_every: int = 5  # epochs per length stage (without --budget)
    curriculum_share: float = 0.6  # with --budget: the length reaches seq_len at this fraction of the budget
    temperature: float = 1.0  # training temperature (Gumbel families); annealed by curriculum
    temperature_min: float = 0.5
    temperature_decay: float = 0.97  # per-epoch multiplicative decay under --curriculum or anneal_temperature
    anneal_temperature: bool = False  # anneal the temperature without the length curriculum
    time_budget: float = 0.0  # seconds of training, then stop cleanly; 0 = no limit
    checkpoint_dir: str = "checkpoints"
    run_dir: str = ""  # default runs/<model>_<timestamp>


@dataclass(frozen=True)
class GenConfig:
    n: int = 150
    temperature: float = 1.0
    seq_len: int = 0  # 0 = the trained length
    output: str = "outputs/generated.fasta"
    # classifier-free guidance W of --label when --guidance is not given, for a checkpoint trained on labels
    # with model.label_drop > 0 (1 = the conditional model); a family's YAML sets what its benchmark measured
    guidance: float = 1.0


@dataclass(frozen=True)
class RunConfig:
    family: str
    data: DataConfig
    train: TrainConfig
    gen: GenConfig
    model: Any  # the family's own frozen Config dataclass

    def to_dict(self) -> dict:
        return {
            "family": self.family,
            "data": dataclasses.asdict(self.data),
            "train": _plain(dataclasses.asdict(self.train)),
            "gen": dataclasses.asdict(self.gen),
            "model": _plain(dataclasses.asdict(self.model)),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _plain(d):
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, tuple):
        return [_plain(v) for v in d]
    return d


def _coerce(value, typ, where: str):
    """Check/convert a value to a dataclass field type; ConfigError if it does not fit."""
    origin = typing.get_origin(typ)
    if origin is typing.Union:
        args = typing.get_args(typ)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if typ is str:
        if isinstance(value, str):
            return value
        if where == "data.path" and isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            return value[0] if len(value) == 1 else list(value)  # several files: each labels its records
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if typ is tuple or origin is tuple:
        if isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            return tuple(float(v) for v in value)
        raise ConfigError(f"{where}: expected a list of numbers, got {value!r}")
    return value


def build_dataclass(cls, values: dict, section: str):
    """Construct a frozen dataclass from a dict, rejecting unknown keys and wrong types."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"config section {section!r} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key {section}.{unknown[0]} (known: {', '.join(sorted(names))})"
        )
    kwargs = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    for f in dataclasses.fields(cls):
        if f.name in kwargs:
            dom = field_domain(section, f, hints[f.name])
            if dom is not None:
                dom.check(kwargs[f.name], f"{section}.{f.name}")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check:
        check()
    return obj


def load_yaml(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return data


def parse_set(items: list[str]) -> dict:
    """['model.hidden=256', 'train.betas=[0.5,0.9]'] -> nested dict with YAML-typed values."""
    out: dict = {}
    for item in items or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set {item!r}: expected section.field=value")
        key, raw = item.split("=", 1)
        section, name = key.split(".", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        if raw.strip() == "":
            value = ""
        out.setdefault(section, {})[name] = value
    return out


SECTIONS = ("data", "train", "gen", "model")


def merge(base: dict, override: dict) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in override.items():
        if section not in SECTIONS:
            raise ConfigError(f"unknown config section {section!r} (known: {', '.join(SECTIONS)})")
        if not isinstance(values, dict):
            raise ConfigError(f"config section {section!r} must be a mapping")
        out.setdefault(section, {}).update(values)
    return out


def check_layer(values: dict, classes: dict, where: str = "") -> None:
    """Each value of one config layer (a file, the flags, --set) has its field's type and domain,
    checked before layers are merged."""
    for section, kv in values.items():
        if section not in classes or not isinstance(kv, dict):
            continue  # merge() names unknown sections and non-mappings
        hints = typing.get_type_hints(classes[section])
        fields = {f.name: f for f in dataclasses.fields(classes[section])}
        for k, v in kv.items():
            if k not in fields:
                continue  # build_dataclass names unknown keys with the known ones
            try:
                v = _coerce(v, hints[k], f"{section}.{k}")
                dom = field_domain(section, fields[k], hints[k])
                if dom is not None:
                    dom.check(v, f"{section}.{k}")
            except ConfigError as exc:
                raise ConfigError(f"{where}{exc}") from None


def resolve(family: str, model_cls, *layers: dict, config_file=None) -> RunConfig:
    """Resolve a RunConfig: family YAML (or config_file), then each override layer in order."""
    path = Path(config_file) if config_file else CONFIG_DIR / f"{family}.yaml"
    values = load_yaml(path) if path.exists() or config_file else {}
    unknown = set(values) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"{path}: unknown config section {sorted(unknown)[0]!r}")
    classes = {"data": DataConfig, "train": TrainConfig, "gen": GenConfig, "model": model_cls}
    check_layer(values, classes, where=f"{path}: ")  # a wrong type in the file is an error even when a flag overrides it
    for layer in layers:
        check_layer(layer, classes)
        values = merge(values, layer)
    return RunConfig(
        family=family,
        data=build_dataclass(DataConfig, values.get("data"), "data"),
        train=build_dataclass(TrainConfig, values.get("train"), "train"),
        gen=build_dataclass(GenConfig, values.get("gen"), "gen"),
        model=build_dataclass(model_cls, values.get("model"), "model"),
    )


def from_dict(d: dict, model_cls) -> RunConfig:
    """Rebuild a RunConfig saved in a checkpoint (no YAML file involved)."""
    return RunConfig(
        family=d["family"],
        data=build_dataclass(DataConfig, d.get("data"), "data"),
        train=build_dataclass(TrainConfig, d.get("train"), "train"),
        gen=build_dataclass(GenConfig, d.get("gen"), "gen"),
        model=build_dataclass(model_cls, d.get("model"), "model"),
    )


def replace(cfg: RunConfig, **sections) -> RunConfig:
    """Return a copy with some fields of some sections replaced: replace(cfg, train={'epochs': 3})."""
    kw = {}
    for name, changes in sections.items():
        kw[name] = dataclasses.replace(getattr(cfg, name), **changes)
    return dataclasses.replace(cfg, **kw)


__all__ = [
    "DataConfig", "TrainConfig", "GenConfig", "RunConfig", "resolve", "from_dict", "parse_set",
    "build_dataclass", "replace", "field",
]
