"""The cluster view: every host that shares the storage, from small per-host records on it (``mqguard list``),
and what the peers say of the storage when this host's is bad."""
