"""The configuration's types: the parsed sections, their enums, and configuration errors."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import List, Optional, Tuple


class StopOnExit(str, enum.Enum):
    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


class ReportMode(str, enum.Enum):
    AUTOSCALING = "autoscaling"
    LOG = "log"


class HaMode(str, enum.Enum):
    """[queue_manager] ha: how this queue manager is kept available (contract section 28)."""

    SINGLE = "single"  # one instance; a replacement host picks up the data on the shared storage
    MULTI_INSTANCE = "multi_instance"  # an active and a standby on two hosts sharing the storage (strmqm -x)
    NATIVE_HA = "native_ha"  # three instances, each on its own block storage, replicating the log (MQ >= 9.4.4)


class PcfMode(str, enum.Enum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


@dataclass(frozen=True)
class QueueManagerConfig:
    name: str
    mq_bin_dir: str
    run_as: str
    create: bool
    data_dir: str
    log_dir: str
    crtmqm_options: Tuple[str, ...]
    mqsc_dir: str
    listener_port: int
    multi_instance: bool
    start_timeout: float
    stop_timeout: float
    stop_on_exit: StopOnExit
    unit: str
    lock_wait: float
    file_lock_heartbeat_len: int
    ha: str = ""  # single | multi_instance | native_ha ("" in the file: from multi_instance); set by load()
    instance_name: str = ""  # native_ha: this host's instance (crtmqm -lr)

    @property
    def native_ha(self) -> bool:
        return self.ha == HaMode.NATIVE_HA.value


@dataclass(frozen=True)
class StorageConfig:
    path: str
    fstypes: Tuple[str, ...]
    mount_timeout: float
    probe_timeout: float


@dataclass(frozen=True)
class HealthConfig:
    poll_interval: float
    grace_period: float
    restart_attempts: int
    restart_limit: int
    restart_window: float
    command_timeout: float
    report: ReportMode
    respect_asg_grace_period: bool


@dataclass(frozen=True)
class AwsConfig:
    region: str
    endpoint_url: str
    imds_url: str
    termination_hook: str
    launch_hook: str
    asg_name: str
    cfn_stack: str
    cfn_resource: str


@dataclass(frozen=True)
class MetricsConfig:
    listen: Optional[Tuple[str, int]]  # None when "off"
    pcf: PcfMode
    queues: Tuple[str, ...]


@dataclass(frozen=True)
class LoggingConfig:
    level: str
    format: str


@dataclass(frozen=True)
class ControlConfig:
    socket: str
    group: str
    pause_max: float
    drill_interval: float


@dataclass(frozen=True)
class HooksConfig:
    on_state_change: str
    timeout: float
    pass_aws_credentials: bool


@dataclass(frozen=True)
class NativeHaInstance:
    """One NativeHAInstance stanza: Name and ReplicationAddress=host(port)."""

    name: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}({self.port})"


@dataclass(frozen=True)
class NativeHaConfig:
    instances: Tuple[NativeHaInstance, ...] = ()
    key_repository: str = ""  # NativeHALocalInstance KeyRepository (stem); empty: replication in plain text
    certificate_label: str = ""
    cipher_spec: str = ""
    heartbeat_interval: float = 5.0  # seconds (qm.ini takes ms)
    heartbeat_timeout: float = 10.0
    quorum_wait: float = 3600.0  # ending this instance would break quorum: wait this long for another to return


@dataclass(frozen=True)
class Config:
    queue_manager: QueueManagerConfig
    storage: StorageConfig
    health: HealthConfig
    aws: AwsConfig
    metrics: MetricsConfig
    logging: LoggingConfig
    control: ControlConfig
    hooks: HooksConfig
    native_ha: NativeHaConfig = NativeHaConfig()
    sources: Tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    section: str
    key: str
    value: str
    expected: str

    def __str__(self) -> str:
        where = f"{self.file}: [{self.section}]" if self.section else self.file
        if self.key:
            where += f" {self.key}"
        value = f" = {self.value!r}" if self.value or self.key else ""
        return f"{where}{value}: {self.expected}"


class ConfigError(Exception):
    """One or more configuration problems; ``str()`` lists all of them."""

    def __init__(self, problems: List[ConfigProblem]) -> None:
        self.problems = problems
        lines = [f"{len(problems)} configuration error(s):"] + [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))
