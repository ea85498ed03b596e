"""Resilin core: the job-flow model and its state machine, orchestration, configuration and CLI."""
