"""Who is calling: the account, and the user (access key) within it.

EMR scopes clusters to an account and, for clusters created with
``VisibleToAllUsers=false``, to the IAM principal that created them.  Resilin's users
are its access keys: several ``[[accounts]]`` entries may share one account id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resilin.jobflows.documents import ClusterDoc, ClusterSummaryDoc


@dataclass(frozen=True)
class Caller:
    account_id: str
    user: str | None = None  # None: the account itself (internal callers), which sees every cluster

    def can_see(self, cluster: ClusterDoc | ClusterSummaryDoc) -> bool:
        if cluster["account"] != self.account_id:
            return False
        if cluster.get("visible_to_all_users", True) or self.user is None:
            return True
        return cluster.get("created_by") in (None, self.user)

    @property
    def arn(self) -> str:
        if self.user is None:
            return f"arn:aws:iam::{self.account_id}:root"
        return f"arn:aws:iam::{self.account_id}:user/{self.user}"


def as_caller(who: str | Caller) -> Caller:
    """Core methods accept a bare account id (tests, internal callers) or a full Caller."""
    return who if isinstance(who, Caller) else Caller(who)
