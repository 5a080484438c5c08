#!/bin/sh
# The trainer image's `torchrun`, first on its PATH: PyTorch's torchrun run through kctl's local
# launcher (kctl/backends/local.py, what `kctl run` starts), which ends with the failing rank's
# exit status where PyTorch's torchrun ends with 1. A SIGTERM (preemption, a deleted pod) thus ends
# the container with its ranks' 143, "checkpoint saved, retry", not with the 1 of an error that a
# PyTorchJob under restartPolicy ExitCode would never retry; a rank's bad input (2) stays 2.
exec python -m kctl.backends.local "$@"
