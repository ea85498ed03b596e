"""The local cloud's EC2 Query protocol: botocore's EC2 model with the kernel's EC2 decoder and writer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.model import OperationModel, StructureShape

from resilin.aws.model import ServiceApi
from resilin.aws.query import EC2QueryDecoder
from resilin.aws.query_xml import EC2XmlWriter
from resilin.provisioners.localcloud.errors import EC2Error

CONTENT_TYPE = "text/xml;charset=UTF-8"
EC2 = ServiceApi(
    "ec2", lambda name: EC2Error("InvalidAction", f"The action {name} is not valid for this web service.")
)
_DECODER = EC2QueryDecoder(EC2Error)


def namespace() -> str:
    # The model omits the trailing slash that EC2 itself puts in its responses.
    return EC2.model.metadata["xmlNamespace"].rstrip("/") + "/"


def operation(name: str) -> OperationModel:
    """The EC2 operation ``name``; EC2's InvalidAction when the model has none."""
    return EC2.operation(name)


def decode(params: Iterable[tuple[str, str]], shape: StructureShape | None) -> dict[str, Any]:
    """The operation input for ``params``; EC2Error on unknown, missing or mistyped values."""
    return _DECODER.decode(params, shape)


def response(op: OperationModel, result: dict[str, Any], request_id: str) -> bytes:
    return EC2XmlWriter(namespace()).response(op, result, request_id)


def error(exc: EC2Error, request_id: str) -> bytes:
    return EC2XmlWriter(namespace()).error(exc, request_id)
