"""Clouds: launching instances through EC2 APIs, reaching them over SSH, reconciling leftovers."""
