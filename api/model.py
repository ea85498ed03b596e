"""The EMR service model shipped with botocore: the single source of every shape we speak."""

from __future__ import annotations

import functools

import botocore.session
from botocore.model import OperationModel, ServiceModel

from resilin.api.errors import UnknownOperation


@functools.cache
def emr_model() -> ServiceModel:
    # Loading the model parses a large JSON file; do it once per process.
    return botocore.session.get_session().get_service_model("emr")


def target_prefix() -> str:
    return emr_model().metadata["targetPrefix"]


def operation(name: str) -> OperationModel:
    """The operation called ``name`` (e.g. ``RunJobFlow``), or UnknownOperation."""
    model = emr_model()
    if name not in model.operation_names:
        raise UnknownOperation(f"Operation {name or '(none)'} is not an EMR operation.")
    return model.operation_model(name)
