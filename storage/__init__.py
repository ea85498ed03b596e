"""Resilin's S3-compatible storage service."""
