"""From an operation name and decoded parameters to the core's converted answer.

Every protocol front end (JSON 1.1 and the legacy Query protocol) goes through here:
look the operation up in the model, check the core implements it, validate the input, call
the core, and check and convert its result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from botocore import xform_name

from resilin.api import model
from resilin.api.errors import InternalFailure, UnknownOperation
from resilin.api.results import ResultShapeError, Scalars, serialize_output
from resilin.api.shapes import parse_input
from resilin.errors import EmrError
from resilin.jobflows.caller import Caller

log = logging.getLogger(__name__)

CoreMethod = Callable[[Caller, dict[str, Any]], dict[str, Any]]


class Dispatcher:
    """Calls ``service.<snake_case_operation>(caller, params)`` on the core."""

    def __init__(self, service: object) -> None:
        self.service = service

    def method(self, operation_name: str) -> CoreMethod:
        # Only public names derived from the model are looked up, so no other attribute of the
        # core can be reached from a request.
        method = getattr(self.service, xform_name(operation_name), None)
        if not callable(method):
            raise UnknownOperation(f"Operation {operation_name} is not supported by this EMR service.")
        return method

    def execute(
        self, caller: Caller, operation_name: str, params: Any, scalars: Scalars, request_id: str = ""
    ) -> dict[str, Any]:
        """The converted result of ``operation_name``; EmrError for anything the client gets."""
        operation = model.operation(operation_name)
        method = self.method(operation_name)
        arguments = parse_input(operation.input_shape, params)
        try:
            result = method(caller, arguments)
        except EmrError:
            raise
        except Exception:
            log.exception("request %s: %s failed in the core", request_id, operation_name)
            raise InternalFailure() from None
        try:
            return serialize_output(operation.output_shape, result, scalars)
        except ResultShapeError as exc:
            log.error(
                "request %s: %s returned a result outside its shape: %s", request_id, operation_name, exc
            )
            raise InternalFailure() from None
