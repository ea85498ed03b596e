"""The overlay's requests to one cloud, through its EC2 API (resilin.provisioners.ec2client).

Each call is safe to repeat: a rule or route already there, or one already gone, is what was
wanted.  Errors the cloud gives for anything else propagate as botocore's ClientError.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from botocore.exceptions import ClientError

from resilin.overlay.plan import Permission
from resilin.provisioners.ec2client import UNSUPPORTED_ERRORS, EC2Client, error_code

log = logging.getLogger(__name__)

# AllocateAddress refused for good (no more addresses, or none in this cloud): the gateway is a spoke.
NO_ADDRESS_ERRORS = {"AddressLimitExceeded", *UNSUPPORTED_ERRORS}
# AllocateAddress refused its TagSpecifications (clouds that tag instances only).
UNTAGGABLE_ERRORS = {
    "InvalidParameterValue",
    "InvalidParameter",
    "UnknownParameter",
    "InvalidParameterCombination",
}


@dataclass(frozen=True)
class GatewayInstance:
    public_ip: str
    vpc_id: str


class CloudOverlay:
    """The overlay's part in one cloud."""

    def __init__(self, client: EC2Client, cloud: str) -> None:
        self.client = client
        self.cloud = cloud

    def describe(self, instance_id: str) -> GatewayInstance:
        found = self.client.describe([instance_id]).get(instance_id)
        if found is None:
            raise LookupError(f"instance {instance_id} is unknown to cloud {self.cloud}")
        return GatewayInstance(found.get("PublicIpAddress") or "", found.get("VpcId") or "")

    def allocate_address(self, tags: dict[str, str]) -> tuple[str, str] | None:
        """(allocation id, address), or None when the cloud gives no more addresses."""
        try:
            try:
                return self.client.allocate_address(tags)
            except ClientError as exc:
                if not tags or error_code(exc) not in UNTAGGABLE_ERRORS:
                    raise
                # A cloud that tags no addresses: the state in Resilin's store still records it.
                return self.client.allocate_address()
        except ClientError as exc:
            if error_code(exc) not in NO_ADDRESS_ERRORS:
                raise
            log.warning(
                "cloud %s gives no public address (%s): its gateway dials out", self.cloud, error_code(exc)
            )
            return None

    def associate_address(self, allocation_id: str, instance_id: str) -> str:
        return self.client.associate_address(allocation_id, instance_id)

    def release_address(self, allocation_id: str, association_id: str) -> None:
        if association_id:
            try:
                self.client.disassociate_address(association_id)
            except ClientError as exc:  # the instance (and so the association) may be gone already
                if error_code(exc) not in ("InvalidAssociationID.NotFound",):
                    raise
        try:
            self.client.release_address(allocation_id)
        except ClientError as exc:
            if error_code(exc) not in ("InvalidAllocationID.NotFound",):
                raise

    def make_router(self, instance_id: str) -> None:
        """The gateway forwards the other clouds' traffic: SourceDestCheck off."""
        self.client.set_source_dest_check(instance_id, False)

    def authorize(self, group_id: str, permissions: Sequence[Permission]) -> None:
        """Admit ``permissions`` in one call; one by one when some are there already."""
        try:
            self.client.authorize_ingress(group_id, [p.ip_permission() for p in permissions])
        except ClientError as exc:
            if error_code(exc) != "InvalidPermission.Duplicate":
                raise
            if len(permissions) > 1:  # the call made none of them: those missing go one by one
                for permission in permissions:
                    self.authorize(group_id, [permission])

    def revoke(self, group_id: str, permissions: Sequence[Permission]) -> None:
        """Revoke ``permissions`` in one call; one by one when some are gone already."""
        try:
            self.client.revoke_ingress(group_id, [p.ip_permission() for p in permissions])
        except ClientError as exc:
            code = error_code(exc)
            if code == "InvalidGroup.NotFound":
                return
            if code != "InvalidPermission.NotFound":
                raise
            if len(permissions) > 1:
                for permission in permissions:
                    self.revoke(group_id, [permission])

    def route_table(self, vpc_id: str) -> str:
        return self.client.main_route_table(vpc_id)

    def put_route(self, table_id: str, destination: str, instance_id: str) -> None:
        try:
            self.client.create_route(table_id, destination, instance_id)
        except ClientError as exc:
            if error_code(exc) != "RouteAlreadyExists":
                raise
            self.client.replace_route(table_id, destination, instance_id)

    def delete_route(self, table_id: str, destination: str) -> None:
        try:
            self.client.delete_route(table_id, destination)
        except ClientError as exc:
            if error_code(exc) not in ("InvalidRoute.NotFound", "InvalidRouteTableID.NotFound"):
                raise
