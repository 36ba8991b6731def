"""What every command raises for a problem the user can fix, and the exit status it maps to."""

EXIT_USAGE = 2


class CommandError(Exception):
    """A problem the user can fix, reported as one sentence."""
