"""The EMR web service over Twisted: the JSON 1.1 protocol and the legacy Query protocol (XML)."""
