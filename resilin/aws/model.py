"""botocore's shipped service models: the single source of every shape the services speak."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence

import botocore.session
from botocore.model import OperationModel, ServiceModel

from resilin.aws.errors import AwsError


def with_data_paths(session: botocore.session.Session, data_paths: Sequence[str]) -> botocore.session.Session:
    """``session`` (not used yet) searching ``data_paths`` for models before botocore's own
    directories; a ``service-2.sdk-extras.json`` found there is merged into that service's model.

    Set on the session rather than in ``AWS_DATA_PATH``, so no other session of the process
    changes; the process's ``AWS_DATA_PATH`` is still searched, after ``data_paths``."""
    current = session.get_config_variable("data_path")
    session.set_config_variable("data_path", os.pathsep.join([*data_paths, *([current] if current else [])]))
    return session


@functools.cache
def service_model(name: str, data_paths: tuple[str, ...] = ()) -> ServiceModel:
    """The model of service ``name``, with the extras found in ``data_paths`` merged in."""
    # Loading a model parses a large JSON file; do it once per process.
    return with_data_paths(botocore.session.get_session(), data_paths).get_service_model(name)


class ServiceApi:
    """One service's model, and the service's own error for an operation it does not have."""

    def __init__(
        self, name: str, unknown: Callable[[str], AwsError], data_paths: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.unknown = unknown
        self.data_paths = data_paths

    @property
    def model(self) -> ServiceModel:
        return service_model(self.name, self.data_paths)

    def operation(self, name: str) -> OperationModel:
        """The operation called ``name`` (e.g. ``RunJobFlow``), or the service's unknown-operation error."""
        model = self.model
        if name not in model.operation_names:
            raise self.unknown(name)
        return model.operation_model(name)
