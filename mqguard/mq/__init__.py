"""Everything that talks to IBM MQ's control commands."""
