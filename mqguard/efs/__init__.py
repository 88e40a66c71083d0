"""The shared file system: the mount and storage probe, mqguard's own .mqguard directory, the pause record."""
