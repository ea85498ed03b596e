"""Deduplicated relocation of running clusters (not built yet)."""
