"""The web console: pages over Resilin's own EMR API, served by ``resilin server`` on console_port."""
