"""Instance metadata (IMDSv2) and the Auto Scaling API."""
