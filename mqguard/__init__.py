"""mqguard: supervisor for an IBM MQ queue manager on EC2 with its data on EFS."""

__version__ = "0.1.0"
