"""The multi-cloud virtual network (not built yet)."""
