"""Query-protocol answers: the operation's output shape written as EMR's XML.

``<OperationResponse xmlns=…><OperationResult>…</OperationResult><ResponseMetadata>
<RequestId>…</RequestId></ResponseMetadata></OperationResponse>``, list items as
``<member>``, map entries as ``<entry><key/><value/></entry>``; errors as
``<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from botocore.model import Shape

from resilin.api.results import Scalars
from resilin.errors import EmrError

NAMESPACE = "http://elasticmapreduce.amazonaws.com/doc/2009-03-31"
CONTENT_TYPE = "text/xml"
# Characters XML 1.0 cannot carry at all; replaced rather than producing a document no parser reads.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def iso8601(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


XML_SCALARS = Scalars(timestamp=iso8601)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else str(value)
    text = _NOT_XML.sub("\ufffd", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _write(shape: Shape, value: Any, out: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        for name, member in shape.members.items():
            if name in value:
                out.append(f"<{name}>")
                _write(member, value[name], out)
                out.append(f"</{name}>")
    elif kind == "list":
        for item in value:
            out.append("<member>")
            _write(shape.member, item, out)
            out.append("</member>")
    elif kind == "map":
        for key, item in value.items():
            out.append(f"<entry><key>{_text(key)}</key><value>")
            _write(shape.value, item, out)
            out.append("</value></entry>")
    else:
        out.append(_text(value))


def response(operation: str, shape: Shape | None, result: dict[str, Any], request_id: str) -> bytes:
    """The answer to ``operation``; ``result`` is already converted (see ``results``)."""
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<{operation}Response xmlns="{NAMESPACE}">']
    if shape is not None:
        out.append(f"<{operation}Result>")
        _write(shape, result, out)
        out.append(f"</{operation}Result>")
    out.append(f"<ResponseMetadata><RequestId>{_text(request_id)}</RequestId></ResponseMetadata>")
    out.append(f"</{operation}Response>")
    return "".join(out).encode("utf-8")


def error(error: EmrError, code: str, request_id: str) -> bytes:
    kind = "Receiver" if error.status >= 500 else "Sender"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="{NAMESPACE}">'
        f"<Error><Type>{kind}</Type><Code>{_text(code)}</Code><Message>{_text(error.message)}</Message></Error>"
        f"<RequestId>{_text(request_id)}</RequestId></ErrorResponse>"
    ).encode()
