"""A cluster's life: its phases, the operations on a running cluster, and its nodes."""
