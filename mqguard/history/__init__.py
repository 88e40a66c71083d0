"""Failover evidence (docs/operating.md, "Failover evidence"): every host's supervision events on the shared EFS,
read back as episodes with phases and outages, and tuning advice drawn from them.

``events`` is the line format, ``writer`` appends off the loop, ``reader`` reads every
host's file with bounds, ``episodes`` and ``advice`` are pure.
"""
