"""Model families. Each module registers itself; import them here explicitly."""
from models import markov  # noqa: F401
from models import stacked  # noqa: F401
from models import gumbel  # noqa: F401
from models import masked  # noqa: F401
from models import seqgan  # noqa: F401
