"""The EMR operations on Resilin's job-flow model.

Each public method takes the caller (an account id, or a ``Caller`` naming the access key
too) and the request's parameters, already validated against botocore's EMR model by the
API layer, and returns the response as a dict of the operation's output shape (timestamps
as aware datetimes).  Methods only touch Redis and answer at once; the orchestrator is told
about new work through the store's notification queue.  The operations live in one module
per area; this class puts them together.
"""

from __future__ import annotations

from resilin.jobflows.cluster_operations import ClusterOperations
from resilin.jobflows.instance_operations import InstanceOperations
from resilin.jobflows.job_flow_detail import JobFlowDetailOperations
from resilin.jobflows.policy_operations import PolicyOperations
from resilin.jobflows.release_operations import ReleaseOperations
from resilin.jobflows.relocation_operations import RelocationOperations
from resilin.jobflows.security_configurations import SecurityConfigurationOperations
from resilin.jobflows.step_operations import MAX_ACTIVE_STEPS, MAX_STEP_STRING_CHARS, StepOperations, new_step

__all__ = ["EmrService", "new_step", "MAX_ACTIVE_STEPS", "MAX_STEP_STRING_CHARS"]


class EmrService(
    ClusterOperations,
    StepOperations,
    InstanceOperations,
    PolicyOperations,
    ReleaseOperations,
    SecurityConfigurationOperations,
    JobFlowDetailOperations,
    RelocationOperations,
):
    """Every EMR operation Resilin implements (``snake_case`` of the operation's name)."""
