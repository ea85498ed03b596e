"""The EMR service model shipped with botocore, with Resilin's own operations merged in
(``resilin.api.models``): the single source of every shape we speak."""

from __future__ import annotations

from botocore.model import OperationModel, ServiceModel

from resilin.api import models
from resilin.api.errors import UnknownOperation
from resilin.aws.model import ServiceApi

EMR = ServiceApi(
    "emr",
    lambda name: UnknownOperation(f"Operation {name or '(none)'} is not an EMR operation."),
    data_paths=(models.data_path(),),
)


def emr_model() -> ServiceModel:
    return EMR.model


def target_prefix() -> str:
    return EMR.model.metadata["targetPrefix"]


def operation(name: str) -> OperationModel:
    """The operation called ``name`` (e.g. ``RunJobFlow``), or UnknownOperation."""
    return EMR.operation(name)
