"""Spark on YARN beside Hadoop: its configuration on every node and its history server on the master."""
