"""Fetch sequences by accession from NCBI with Bio.Entrez, cached on disk.

    python -m utils.fetch NC_001416 --email you@example.org -o data/

Each accession is written to <out>/<accession>.fasta (atomically); an existing file is reused
without a network call. Offline or unknown accessions fail with one line and exit code 2.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from utils.errors import ConfigError, DnaganError, InputError

ACCESSION = re.compile(r"^[A-Za-z]{1,6}_?\d+(\.\d+)?$")


def fetch(accession: str, email: str, out_dir="data", *, entrez=None, db: str = "nuccore") -> Path:
    """Path of <out_dir>/<accession>.fasta, downloaded with Entrez.efetch unless already cached."""
    from utils.sequences import atomic_write_text, read_records

    if not ACCESSION.match(accession):
        raise ConfigError(f"{accession!r} does not look like an accession (e.g. NC_001416)")
    path = Path(out_dir) / f"{accession}.fasta"
    if path.exists() and path.stat().st_size > 0:
        return path
    if not email or "@" not in email:
        raise ConfigError("NCBI asks for a contact address: pass --email you@example.org")
    if entrez is None:
        from Bio import Entrez as entrez
    entrez.email = email
    try:
        handle = entrez.efetch(db=db, id=accession, rettype="fasta", retmode="text")
        try:
            text = handle.read()
        finally:
            handle.close()
    except Exception as exc:  # urllib errors, HTTP errors: one line, no traceback
        reason = getattr(exc, "reason", None) or exc
        raise InputError(f"cannot fetch {accession} from NCBI ({type(exc).__name__}: {reason}); "
                         "offline? place the FASTA in the output folder instead") from None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not text.lstrip().startswith(">"):
        raise InputError(f"NCBI returned no FASTA for {accession}: {text.strip()[:120]!r}")
    atomic_write_text(path, text)
    read_records(path)  # the cached file must parse
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m utils.fetch", description=__doc__.split("\n\n")[0])
    ap.add_argument("accessions", nargs="+")
    ap.add_argument("--email", default="")
    ap.add_argument("-o", "--out", default="data")
    args = ap.parse_args(argv)
    try:
        for acc in args.accessions:
            print(fetch(acc, args.email, args.out))
    except DnaganError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
