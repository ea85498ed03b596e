"""botocore's shipped EC2 service model: the source of truth for request and response shapes."""

from __future__ import annotations

import functools

import botocore.session
from botocore.model import OperationModel, ServiceModel

from resilin.provisioners.localcloud.errors import EC2Error


@functools.cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("ec2")


def namespace() -> str:
    # The model omits the trailing slash that EC2 itself puts in its responses.
    return service_model().metadata["xmlNamespace"].rstrip("/") + "/"


def api_version() -> str:
    return service_model().metadata["apiVersion"]


def operation(name: str) -> OperationModel:
    try:
        return service_model().operation_model(name)
    except Exception:  # botocore raises OperationNotFoundError, a KeyError subclass in some versions
        raise EC2Error("InvalidAction", f"The action {name} is not valid for this web service.") from None
