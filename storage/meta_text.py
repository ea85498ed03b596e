"""User metadata values that are not US-ASCII, handled as S3 handles them.

HTTP header values are bytes; clients send non-ASCII metadata as UTF-8 (or already encoded as an
RFC 2047 encoded word).  S3 stores the text and, since headers are only safe in ASCII, answers
such a value as an RFC 2047 encoded word: ``=?UTF-8?B?<base64 of the UTF-8>?=``.  SDKs hand that
form on to the application unchanged, as they do with S3.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re

_ENCODED_WORD = re.compile(r"=\?([^?]+)\?([BbQq])\?([^?]*)\?=")


def stored_value(received: str) -> str:
    """The text of a received value (which arrives decoded as Latin-1, byte for byte)."""
    if received.isascii():
        return _decode_words(received) if "=?" in received else received
    try:
        return received.encode("latin-1").decode("utf-8")
    except UnicodeEncodeError:
        return received  # already text (a form field of a POST upload)
    except UnicodeDecodeError:
        return received  # not UTF-8: kept as the bytes it was


def answered_value(stored: str) -> str:
    """How a stored value goes back in a header."""
    if stored.isascii():
        return stored
    return f"=?UTF-8?B?{base64.b64encode(stored.encode('utf-8')).decode('ascii')}?="


def _decode_words(value: str) -> str:
    def one(match: re.Match[str]) -> str:
        charset, kind, text = match.group(1), match.group(2).upper(), match.group(3)
        try:
            if kind == "B":
                raw = base64.b64decode(text, validate=True)
            else:
                raw = quopri.decodestring(text.replace("_", " ").encode("ascii"), header=True)
            return raw.decode(charset)
        except (binascii.Error, LookupError, UnicodeDecodeError, ValueError):
            return match.group(0)  # not a well-formed encoded word: kept as sent

    return _ENCODED_WORD.sub(one, value)
