"""Steps: how each runs on the master, which run when, and what their ends do."""
