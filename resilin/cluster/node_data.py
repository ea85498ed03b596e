"""User data carried inside the bash scripts Resilin runs on nodes, as data and never as shell.

Step arguments, configuration values and names come from users and may hold anything a
shell reacts to: quotes, ``$``, backticks, or a line equal to a here-document's terminator.
A file's bytes travel base64-encoded (its alphabet cannot end a here-document or quote) and
are decoded on the node; single words go through :func:`shlex.quote`; text in a comment is
kept on one line.
"""

from __future__ import annotations

import base64
import json

# Ends the here-documents below; base64 output (A-Z a-z 0-9 + / =) never equals it.
_TERMINATOR = "RESILIN_EOF_B64"


def write_file(target: str, data: str | bytes, append: bool = False) -> str:
    """Bash that writes ``data`` byte for byte to ``target``, a shell word the caller has quoted."""
    raw = data.encode() if isinstance(data, str) else data
    encoded = base64.encodebytes(raw).decode().rstrip("\n")
    redirect = ">>" if append else ">"
    return f"base64 -d {redirect}{target} <<'{_TERMINATOR}'\n{encoded}\n{_TERMINATOR}"


def comment_text(text: str) -> str:
    """``text`` fit for a ``#`` comment: one line (a newline would end the comment and start code)."""
    return json.dumps(text)[1:-1]
