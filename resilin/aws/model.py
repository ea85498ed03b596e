"""botocore's shipped service models: the single source of every shape the services speak."""

from __future__ import annotations

import functools
from collections.abc import Callable

import botocore.session
from botocore.model import OperationModel, ServiceModel

from resilin.aws.errors import AwsError


@functools.cache
def service_model(name: str) -> ServiceModel:
    # Loading a model parses a large JSON file; do it once per process.
    return botocore.session.get_session().get_service_model(name)


class ServiceApi:
    """One service's model, and the service's own error for an operation it does not have."""

    def __init__(self, name: str, unknown: Callable[[str], AwsError]) -> None:
        self.name = name
        self.unknown = unknown

    @property
    def model(self) -> ServiceModel:
        return service_model(self.name)

    def operation(self, name: str) -> OperationModel:
        """The operation called ``name`` (e.g. ``RunJobFlow``), or the service's unknown-operation error."""
        model = self.model
        if name not in model.operation_names:
            raise self.unknown(name)
        return model.operation_model(name)
