"""Small pieces every part uses: the clock, backoff, untrusted input, exit codes, logging setup."""
