"""What mqguard serves: HTTP endpoints, the control socket, metrics and the counters behind them, sd_notify."""
