"""The job-flow model: clusters, instance groups and steps, their states, and the EMR operations on them."""
