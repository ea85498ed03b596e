"""The AWS protocol kernel shared by Resilin's services: signatures, HTTP skeleton and limits."""
