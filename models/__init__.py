"""Model families. Each module registers itself; import them here explicitly."""
from models import markov  # noqa: F401
