"""Exit codes of the command line (docs/reference.md, "Command line"): the one place they are defined."""

EX_OK = 0  # ok / healthy
EX_UNHEALTHY = 1  # unhealthy (check/status), no daemon answering, or a runtime error
EX_DEGRADED = 2  # starting or recovering: not failed yet, not healthy yet
EX_USAGE = 64  # usage error
EX_CONFIG = 78  # configuration error (EX_CONFIG; the unit does not restart on it)
