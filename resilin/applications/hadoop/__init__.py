"""Hadoop as a cluster's application: HDFS and YARN on every node (see application.py)."""
