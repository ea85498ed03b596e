"""The documents Resilin keeps in Redis, as the store reads and writes them (JSON, snake_case).

One place for their fields, which the API operations (``resilin.jobflows``), the cluster's
worker (``resilin.cluster``), provisioning and the step scheduler each add to.  A field a
document gets only later in its life is ``NotRequired``; a field that is always written but may
be empty is ``X | None``.  States are plain strings when read back; they compare equal to the
``StrEnum`` members of :mod:`resilin.jobflows.states` named beside each one.

Members copied from a request as EMR shapes them (bootstrap actions, configurations, tags,
policies) keep EMR's CamelCase names.
"""

# No ``from __future__ import annotations``: TypedDict reads NotRequired from evaluated annotations.
from typing import Any, NotRequired, TypedDict

# An EMR ``Configuration`` (Classification, Properties, nested Configurations), stored as given.
Configuration = dict[str, Any]


class StateReason(TypedDict, total=False):
    code: str | None  # a *StateChangeReasonCode of the document's kind
    message: str | None


class Timeline(TypedDict, total=False):
    """Epoch seconds: when the document was made, ready (started, for a step) and ended."""

    created: float
    ready: float
    start: float
    end: float


class Tag(TypedDict):
    Key: str
    Value: str


class ScriptBootstrapAction(TypedDict):
    Path: str
    Args: NotRequired[list[str]]


class BootstrapActionDoc(TypedDict):
    """A bootstrap action as RunJobFlow gave it."""

    Name: str
    ScriptBootstrapAction: ScriptBootstrapAction


class NetworkDoc(TypedDict):
    """Where the request asked the cluster to be placed (Instances.Placement, subnets, groups)."""

    availability_zone: str | None
    requested_availability_zones: list[str] | None
    subnet_id: str | None
    requested_subnet_ids: list[str] | None
    master_security_group: str | None
    slave_security_group: str | None
    service_access_security_group: str | None
    additional_master_security_groups: list[str] | None
    additional_slave_security_groups: list[str] | None


class AutoScalingPolicyDoc(TypedDict):
    Constraints: dict[str, int]
    Rules: list[dict[str, Any]]
    state: str  # an AutoScalingPolicyState
    state_reason: NotRequired[StateReason | None]


class FleetDoc(TypedDict):
    """What an instance fleet asked for; the group carrying it holds the chosen type and count."""

    TargetOnDemandCapacity: int
    TargetSpotCapacity: int
    weight: int
    specifications: list[dict[str, Any]]
    LaunchSpecifications: dict[str, Any] | None
    ResizeSpecifications: dict[str, Any] | None
    Context: str | None


class PendingConfigurations(TypedDict):
    version: int
    type: str  # ReconfigurationType: OVERWRITE or MERGE


class InstanceGroupDoc(TypedDict):
    """An instance group, or an instance fleet (then ``fleet`` is set), inside its cluster."""

    id: str
    name: str
    role: str  # MASTER, CORE or TASK
    instance_type: str
    cloud: str | None  # the cloud the request placed it in ("type@cloud"), else any
    requested: int
    running: int
    market: str
    configurations: list[Configuration]
    state: str  # an InstanceGroupState
    timeline: Timeline
    state_reason: NotRequired[StateReason | None]
    bid_price: NotRequired[str | None]
    ebs_block_devices: NotRequired[list[dict[str, Any]]]
    ebs_optimized: NotRequired[bool | None]
    custom_ami_id: NotRequired[str | None]
    auto_scaling_policy: NotRequired[AutoScalingPolicyDoc | None]
    fleet: NotRequired[FleetDoc]
    # A fleet spread over clouds (resilin.jobflows.group_clouds): cloud ("": the cluster's) → type.
    spread: NotRequired[dict[str, str]]
    # ModifyInstanceGroups: what is asked for, until the cluster's monitor has applied it.
    terminate_ec2_ids: NotRequired[list[str]]
    shrink_policy: NotRequired[dict[str, Any]]
    decommission_timeout: NotRequired[int | None]
    configurations_version: NotRequired[int]
    pending_configurations: NotRequired[PendingConfigurations]
    applied_configurations: NotRequired[list[Configuration]]
    applied_configurations_version: NotRequired[int]


class ExcludedNode(TypedDict):
    """A node HDFS and YARN are told to decommission (their exclude files), by private address."""

    private_ip: str
    hostname: str


# How far a relocation has gone, as its pipeline writes it: bytes_total, bytes_sent, chunks_total,
# chunks_sent, phase_started (epoch seconds), eta_seconds.
RelocationProgress = dict[str, float]


class RelocationDoc(TypedDict):
    """A relocation in progress (RelocateCluster): written by the API, then moved on by the
    orchestrator's relocation pipeline, which removes it when it ends."""

    destination: str  # a configured cloud's name
    groups: dict[str, str]  # instance group id → its instance type in the destination
    phase: str  # a resilin.jobflows.relocations.RelocationPhase
    requested: float  # epoch seconds
    progress: RelocationProgress
    # Where the moving groups were when the request came, for DescribeClusterRelocation (several
    # clouds: their names separated by commas).  Written by the API; the pipeline need not read it.
    source: NotRequired[str]
    # Written by the pipeline before anything stops: the ids of the instances that move and of
    # those that stay, so that a move cut short by a restart can be undone (resilin.migrate.recovery).
    source_instances: NotRequired[list[str]]
    staying_instances: NotRequired[list[str]]


# A relocation that has ended, appended by the pipeline to the cluster's ``relocations``: source,
# destination, groups (as in RelocationDoc), requested, ended (epoch seconds), outcome (a
# resilin.jobflows.relocations.RelocationOutcome), message, bytes_sent, downtime_seconds; the
# pipeline may add figures of its own.
RelocationRecord = dict[str, Any]


class ClusterDoc(TypedDict):
    """A cluster (job flow), from RunJobFlow until it is deleted with its account's history."""

    id: str
    account: str
    created_by: str | None  # the user (access key) that made it; None for the account itself
    arn: str
    name: str
    log_uri: str | None
    log_encryption_kms_key_id: str | None
    release_label: str | None
    requested_ami_version: str | None
    running_ami_version: str | None
    os_release_label: str | None
    applications: list[dict[str, Any]]
    configurations: list[Configuration]
    bootstrap_actions: list[BootstrapActionDoc]
    groups: list[InstanceGroupDoc]
    instance_collection_type: str  # INSTANCE_GROUP or INSTANCE_FLEET
    network: NetworkDoc
    keep_alive: bool
    termination_protected: bool
    unhealthy_node_replacement: bool | None
    ec2_key_name: str | None
    hadoop_version: str | None
    visible_to_all_users: bool
    service_role: str | None
    job_flow_role: str | None
    auto_scaling_role: str | None
    scale_down_behavior: str
    security_configuration: str | None
    custom_ami_id: str | None
    ebs_root_volume_size: int | None
    ebs_root_volume_iops: int | None
    ebs_root_volume_throughput: int | None
    placement_groups: list[dict[str, Any]] | None
    extended_support: bool | None
    tags: list[Tag]
    step_concurrency_level: int
    auto_termination_policy: dict[str, Any] | None
    managed_scaling_policy: dict[str, Any] | None
    state: str  # a ClusterState
    state_reason: StateReason | None
    timeline: Timeline
    master_public_dns: str | None
    terminate_requested: bool
    # Written by the cluster's worker as it goes.
    hdfs_replication: NotRequired[int]
    home_rack: NotRequired[str]  # the rack of the master's cloud's nodes, fixed when Hadoop starts
    excluded_nodes: NotRequired[dict[str, ExcludedNode]]
    phases: NotRequired[dict[str, float]]
    # [state, epoch seconds] at each change of state, the first being STARTING at creation.
    state_history: NotRequired[list[list[Any]]]
    configure_timing: NotRequired[dict[str, float]]
    # RelocateCluster: the relocation in progress, and those that ended (oldest first).
    relocation: NotRequired[RelocationDoc]
    relocations: NotRequired[list[RelocationRecord]]


class GroupSummary(TypedDict):
    instance_type: str
    requested: int


class RelocationSummary(TypedDict):
    destination: str
    phase: str


class ClusterSummaryDoc(TypedDict):
    """The members of a cluster ListClusters shows or filters on, kept beside the cluster."""

    id: str
    account: str
    name: str
    state: str
    state_reason: StateReason | None
    timeline: Timeline
    arn: str
    visible_to_all_users: bool
    created_by: str | None
    groups: list[GroupSummary]
    relocation: NotRequired[RelocationSummary]  # while the cluster is relocated


class StepFailure(TypedDict, total=False):
    reason: str
    message: str
    log_file: str


class StepDoc(TypedDict):
    id: str
    cluster_id: str
    name: str
    action_on_failure: str  # an ActionOnFailure
    jar: str
    main_class: str | None
    args: list[str]
    properties: dict[str, str]
    log_uri: str | None
    execution_role_arn: str | None
    state: str  # a StepState
    state_reason: StateReason | None
    failure: StepFailure | None
    timeline: Timeline
    cancel_option: NotRequired[str]  # StepCancellationOption, once CancelSteps asked
    yarn_application_ids: NotRequired[list[str]]


class InstanceDoc(TypedDict):
    """An instance of a cluster, from the moment its node answers over SSH."""

    id: str
    ec2_id: str
    cloud: str
    group_id: str
    role: str
    instance_type: str
    private_ip: str
    public_ip: str
    public_dns: str
    hostname: str
    state: str  # an InstanceState
    host_keys: NotRequired[list[str]]
    state_reason: NotRequired[StateReason]
    timeline: NotRequired[Timeline]


class SecurityConfigurationDoc(TypedDict):
    name: str
    configuration: str  # the JSON document as the request gave it
    created: float


class BlockPublicAccessDoc(TypedDict):
    configuration: dict[str, Any]
    created: float
    created_by: str
