"""Running commands: bounded, cancellable, observed (MQ's control commands and hooks use it)."""
