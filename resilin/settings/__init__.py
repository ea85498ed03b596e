"""Resilin's configuration and the checks of its host."""
