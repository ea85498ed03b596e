"""The local cloud: an EC2-compatible endpoint backed by containers."""
