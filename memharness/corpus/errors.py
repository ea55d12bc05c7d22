"""The one exception type corpus code raises for problems a user can fix."""

from memharness.errors import MemharnessError


class CorpusError(MemharnessError):
    """A corpus source is misconfigured, unreachable, or holds fewer records than asked for."""
