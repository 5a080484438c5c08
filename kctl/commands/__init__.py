"""One module per ``kctl`` subcommand.

Each module defines ``NAME``, ``HELP`` (one line), ``ORDER`` (position in ``kctl --help``),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported on every ``kctl`` call:
keep their top level light (no torch, mmengine or kubernetes imports).
"""
