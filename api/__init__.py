"""The EMR web service (JSON 1.1 protocol over Twisted)."""
