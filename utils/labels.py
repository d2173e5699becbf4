"""Labels of sequence records: a kind per record (a species, a cell type's enhancers, an expression
bin), for conditional training and its fidelity score.

Where a record's label comes from, first match wins:
1. a table (``--labels ids.tsv``): record id, a tab, the label; '#' lines and a first line headed
   ``id``/``record``/``record_id``/``name`` are skipped;
2. a regular expression over the whole header line (``--label_pattern``): its first group, or the
   whole match when it has no group;
3. ``label=NAME`` anywhere in the header (FASTA description, GenBank DEFINITION), when every
   record has one;
4. with several files, the file's stem (``host.fasta`` -> ``host``).
A record the chosen source does not label is an error naming the file and record; so is a mix of
records with and without ``label=``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from utils.errors import InputError

HEADER_LABEL = re.compile(r"(?:^|\s)label=(\S+)")
TABLE_HEADS = {"id", "record", "record_id", "name"}
# a label needs at least this many training windows (and one held-out window when there is a split)
MIN_LABEL_WINDOWS = 10


@dataclass(frozen=True)
class LabelSource:
    """How records get labels: a regex over the header, or a TSV table of record id -> label."""

    pattern: str | None = None
    table: str | None = None

    def key(self) -> tuple:
        """What the data cache keys on (a table's content, not only its name)."""
        from utils.sequences import file_sha256

        return (self.pattern, file_sha256(self.table) if self.table else None)


def read_table(path) -> dict[str, str]:
    """{record id: label} from a two-column tab-separated file."""
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read the label table ({exc})") from None
    out: dict[str, str] = {}
    for i, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            if i == 1 and fields[0].strip().lower() in TABLE_HEADS:
                continue
            raise InputError(f"{p}: line {i}: expected 'record id<TAB>label', got {line[:80]!r}")
        rid, label = fields[0].strip(), fields[1].strip()
        if not out and i == 1 and rid.lower() in TABLE_HEADS:
            continue  # a header row
        if rid in out and out[rid] != label:
            raise InputError(f"{p}: line {i}: record {rid!r} is labelled both {out[rid]!r} and {label!r}")
        out[rid] = label
    if not out:
        raise InputError(f"{p}: no labels in the table")
    return out


def record_labels(files: list[tuple[str, list[tuple[str, str]]]], source: LabelSource | None) -> list[list[str]] | None:
    """Per file, per record, its label; None when the data carry no labels.

    ``files``: (path, [(record id, header line)]) for every file given."""
    source = source or LabelSource()
    if source.table:
        table = read_table(source.table)
        return [[_need(table.get(rid), path, rid, f"has no row in {source.table}") for rid, _ in recs]
                for path, recs in files]
    if source.pattern:
        try:
            rx = re.compile(source.pattern)
        except re.error as exc:
            raise InputError(f"--label_pattern {source.pattern!r}: not a regular expression ({exc})") from None
        out = []
        for path, recs in files:
            labels = []
            for rid, title in recs:
                m = rx.search(title)
                got = (m.group(1) if rx.groups else m.group(0)) if m else None
                labels.append(_need(got, path, rid, f"does not match --label_pattern '{source.pattern}'"))
            out.append(labels)
        return out
    found = [[_header_label(title) for _, title in recs] for _, recs in files]
    n_with = sum(lab is not None for labels in found for lab in labels)
    n_all = sum(len(labels) for labels in found)
    if n_with:
        if n_with < n_all:
            path, rid = next((path, rid) for (path, recs), labels in zip(files, found)
                             for (rid, _), lab in zip(recs, labels) if lab is None)
            raise InputError(f"{path}: record {rid!r} has no label= in its header, but {n_with} of {n_all} "
                             "records have one (label every record, or none)")
        return found
    if len(files) > 1:
        stems = [file_label(path) for path, _ in files]
        if len(set(stems)) < len(stems):
            raise InputError(f"two --data files have the same stem ({', '.join(stems)}): their labels would clash")
        return [[stem] * len(recs) for stem, (_, recs) in zip(stems, files)]
    return None


def _header_label(title: str) -> str | None:
    m = HEADER_LABEL.search(title)
    return m.group(1) if m else None


def _need(label, path, rid, why: str) -> str:
    if label is None or not str(label).strip():
        raise InputError(f"{path}: record {rid!r} {why}")
    return str(label)


def generated_labels(path) -> list[str] | None:
    """The label each generated sequence was asked for, from label=NAME in its header (as --mode gen
    --label writes them), in file order; None when no header has one. Some with and some without is
    an error naming the first record without."""
    from utils.sequences import read_records

    recs = read_records(path, titles=True)
    found = [_header_label(title) for _, title, _ in recs]
    if not any(lab is not None for lab in found):
        return None
    missing = next((rid for (rid, _, _), lab in zip(recs, found) if lab is None), None)
    if missing is not None:
        raise InputError(f"{path}: record {missing!r} has no label= in its header, but "
                         f"{sum(lab is not None for lab in found)} of {len(found)} records have one")
    return found


def file_label(path) -> str:
    """The label a file's records take when several files are given: its stem (``host.fasta.gz`` -> ``host``)."""
    return Path(path).name.split(".")[0]
