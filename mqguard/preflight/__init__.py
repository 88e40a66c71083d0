"""``mqguard preflight``: what an MQ administrator checks on a new host before trusting it."""
