"""Errors that ``python -m trainer`` turns into one line on stderr and an exit code, never a traceback."""


class TrainerError(Exception):
    """A failure the user can act on. The CLI prints ``trainer: error: <message>`` and exits 1."""

    exit_code = 1


class UsageError(TrainerError):
    """Bad input on the command line or in the launch environment. Exit code 2, like argparse."""

    exit_code = 2
