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
class Config:
    queue_manager: QueueManagerConfig
    storage: StorageConfig
    health: HealthConfig
    aws: AwsConfig
    metrics: MetricsConfig
    logging: LoggingConfig
    control: ControlConfig
    hooks: HooksConfig
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
