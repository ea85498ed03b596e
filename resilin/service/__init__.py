"""Resilin's process: the services it runs, composed and stopped in order, and its child processes."""
