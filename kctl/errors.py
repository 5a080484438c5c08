"""Errors that the CLI turns into one line on stderr and an exit code, never a traceback."""


class KctlError(Exception):
    """A failure the user can act on. The CLI prints ``kctl: error: <message>`` and exits 1."""

    exit_code = 1


class UsageError(KctlError):
    """Bad input on the command line or in the environment. Exit code 2, like argparse."""

    exit_code = 2
