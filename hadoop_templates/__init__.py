"""Jinja2 templates for Hadoop configuration and node scripts."""
