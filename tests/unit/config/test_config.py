from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mqguard import config
from mqguard.config import ConfigError, ReportMode, StopOnExit
from mqguard.config import values as configvalues

ROOT = Path(__file__).resolve().parents[3]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_minimal_config_gets_shipped_defaults(tmp_path: Path) -> None:
    cfg = config.load(str(write(tmp_path / "m.conf", "[queue_manager]\nname = QM1\n")))
    assert cfg.queue_manager.name == "QM1"
    assert cfg.queue_manager.mq_bin_dir == "/opt/mqm/bin"
    assert cfg.queue_manager.run_as == "mqm"
    assert cfg.queue_manager.listener_port == 1414
    assert cfg.queue_manager.start_timeout == 300.0
    assert cfg.queue_manager.stop_on_exit is StopOnExit.AUTO
    assert cfg.storage.fstypes == ("nfs4",)
    assert cfg.storage.mount_timeout == 600.0
    assert cfg.health.poll_interval == 5.0 and cfg.health.grace_period == 60.0
    assert cfg.health.report is ReportMode.AUTOSCALING
    assert cfg.metrics.listen == ("0.0.0.0", 9157)
    assert cfg.aws.imds_url == "http://169.254.169.254"


@pytest.mark.parametrize(
    "raw,seconds", [("500ms", 0.5), ("5s", 5), ("2m", 120), ("1h", 3600), ("7", 7), (" 1.5s ", 1.5)]
)
def test_durations(raw: str, seconds: float) -> None:
    assert configvalues.parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["5 minutes", "-1s", "s", "", "1w", "1e3"])
def test_bad_durations_are_rejected(raw: str) -> None:
    with pytest.raises(ValueError):
        configvalues.parse_duration(raw)


@pytest.mark.parametrize("raw,value", [("yes", True), ("Off", False), ("1", True), ("FALSE", False), ("on", True)])
def test_booleans(raw: str, value: bool) -> None:
    assert configvalues.parse_bool(raw) is value


def test_every_bad_key_is_named_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.conf",
        "[queue_manager]\nname = QM1\nlistener_port = 99999\n[health]\ngrace_period = soon\npoll_intervall = 5s\n",
    )
    with pytest.raises(ConfigError) as exc:
        config.load(str(path))
    problems = {(p.section, p.key) for p in exc.value.problems}
    assert problems == {("queue_manager", "listener_port"), ("health", "grace_period"), ("health", "poll_intervall")}
    text = str(exc.value)
    assert str(path) in text and "99999" in text and "an integer from 0 to 65535" in text
    assert "unknown key" in text


def test_missing_name_and_unknown_section(tmp_path: Path) -> None:
    path = write(tmp_path / "m.conf", "[queue_manager]\n[efs]\npath = /x\n")
    with pytest.raises(ConfigError) as exc:
        config.load(str(path))
    text = str(exc.value)
    assert "[queue_manager] name" in text and "required" in text
    assert "[efs]: unknown section" in text


@pytest.mark.parametrize("name", ["QM 1", "x" * 49, "QM1;rm", "QM$"])
def test_invalid_queue_manager_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError):
        config.load(str(write(tmp_path / "m.conf", f"[queue_manager]\nname = {name}\n")))


def test_valid_unusual_queue_manager_name(tmp_path: Path) -> None:
    cfg = config.load(str(write(tmp_path / "m.conf", "[queue_manager]\nname = a.b/c_%9\n")))
    assert cfg.queue_manager.name == "a.b/c_%9"


def test_conf_d_overrides_in_sorted_order(tmp_path: Path) -> None:
    main = write(tmp_path / "mqguard.conf", "[queue_manager]\nname = QM1\n[health]\ngrace_period = 60s\n")
    (tmp_path / "conf.d").mkdir()
    write(tmp_path / "conf.d" / "20-b.conf", "[health]\ngrace_period = 2m\n")
    write(tmp_path / "conf.d" / "10-a.conf", "[health]\ngrace_period = 30s\npoll_interval = 1s\n")
    write(tmp_path / "conf.d" / "ignored.txt", "[bogus]\n")
    cfg = config.load(str(main))
    assert cfg.health.grace_period == 120.0
    assert cfg.health.poll_interval == 1.0
    assert len(cfg.sources) == 3


def test_bad_key_in_conf_d_names_that_file(tmp_path: Path) -> None:
    main = write(tmp_path / "mqguard.conf", "[queue_manager]\nname = QM1\n")
    (tmp_path / "conf.d").mkdir()
    bad = write(tmp_path / "conf.d" / "50-x.conf", "[storage]\nprobe_timeout = fast\n")
    with pytest.raises(ConfigError) as exc:
        config.load(str(main))
    assert exc.value.problems[0].file == str(bad)


def test_environment_variable_replaces_default_path(tmp_path: Path) -> None:
    assert config.default_path({"MQGUARD_CONFIG": "/x/y.conf"}) == "/x/y.conf"
    assert config.default_path({}) == "/etc/mqguard/mqguard.conf"


def test_missing_file_and_broken_ini(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        config.load(str(tmp_path / "nope.conf"))
    with pytest.raises(ConfigError, match="not valid INI"):
        config.load(str(write(tmp_path / "b.conf", "name = QM1\n")))


def test_cross_checks_data_dir_must_be_on_storage(tmp_path: Path) -> None:
    path = write(tmp_path / "m.conf", "[queue_manager]\nname=QM1\ndata_dir=/local/qmgrs\n[storage]\npath=/MQHA\n")
    with pytest.raises(ConfigError, match="below storage.path"):
        config.load(str(path))


def test_crtmqm_options_are_shell_words_without_md(tmp_path: Path) -> None:
    ok = write(tmp_path / "a.conf", "[queue_manager]\nname=QM1\ncrtmqm_options = -lc -lf 4096 -u 'SYSTEM.DEAD.LETTER.QUEUE'\n")
    assert config.load(str(ok)).queue_manager.crtmqm_options == ("-lc", "-lf", "4096", "-u", "SYSTEM.DEAD.LETTER.QUEUE")
    bad = write(tmp_path / "b.conf", "[queue_manager]\nname=QM1\ncrtmqm_options = -md /x\n")
    with pytest.raises(ConfigError, match="data_dir"):
        config.load(str(bad))


@pytest.mark.parametrize(
    "raw,value", [("off", None), ("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:9157", ("::1", 9157))]
)
def test_listen(raw: str, value: object) -> None:
    assert configvalues.parse_listen(raw) == value


@pytest.mark.parametrize("raw", ["9157", "host.example:9157", "1.2.3.4:70000", "[::1]"])
def test_bad_listen(raw: str) -> None:
    with pytest.raises(ValueError):
        configvalues.parse_listen(raw)


def test_effective_config_round_trips(tmp_path: Path) -> None:
    src = write(tmp_path / "m.conf", "[queue_manager]\nname=QM1\ncrtmqm_options=-lc -lf 4096\n[metrics]\nlisten=[::1]:9000\n")
    cfg = config.load(str(src))
    again = write(tmp_path / "again.conf", "\n".join(config.effective_lines(cfg)))
    assert config.load(str(again)).queue_manager == cfg.queue_manager
    assert config.load(str(again)).metrics == cfg.metrics


def test_shipped_example_config_mirrors_the_schema() -> None:
    """examples/mqguard.conf documents every key with its real default, all commented out."""
    text = (ROOT / "examples" / "mqguard.conf").read_text()
    active = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith((";", "#"))]
    assert active == [], f"the shipped config must be fully commented: {active}"
    uncommented = "\n".join(line[2:] if line.startswith("; ") else line for line in text.splitlines())
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    parser.read_string(uncommented)
    for section, options in config.SCHEMA.items():
        assert parser.has_section(section), section
        for key, option in options.items():
            assert parser.has_option(section, key), f"[{section}] {key} missing from the example"
            assert parser.get(section, key).strip() == option.default, f"[{section}] {key} default differs"


@pytest.mark.parametrize("key,raw,expected", [
    ("poll_interval", "9" * 400, "a duration such as"),  # was read as infinity and crashed `run` with exit 1
    ("poll_interval", "0.0000000000001", "a duration such as"),  # 1e-13 s was accepted
    ("poll_interval", "1ms", "a duration from 100ms to 1h"),
    ("grace_period", "1000h", "a duration from 0s to 1d"),
    ("restart_window", "5s", "a duration from 1m to 7d"),
    ("restart_limit", "-1", "an integer from 0 to 1000"),
])
def test_every_duration_and_number_has_a_sane_range(tmp_path: Path, key: str, raw: str, expected: str) -> None:
    path = write(tmp_path / "m.conf", f"[queue_manager]\nname = QM1\n[health]\n{key} = {raw}\n")
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    assert expected in str(info.value) and f"[health] {key}" in str(info.value)


@pytest.mark.timeout(10)
def test_huge_and_binary_values_are_refused_quickly(tmp_path: Path) -> None:
    # 1 MB of crtmqm options took 48 s (quadratic shell-word split) at every start and reload
    words = " ".join(["-lf 4096"] * 60_000)  # half a megabyte
    path = write(tmp_path / "m.conf", f"[queue_manager]\nname = QM1\ncrtmqm_options = {words}\n"
                                      f"mqsc_dir = /etc/mq\x01sc\n")
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    text = str(info.value)
    assert "crtmqm_options" in text and "at most 4096 characters" in text
    assert "mqsc_dir" in text and "control characters" in text


def test_nul_byte_in_a_path_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "m.conf"
    path.write_bytes(b"[queue_manager]\nname = QM1\nmq_bin_dir = /opt/mqm\x00/bin\n")
    with pytest.raises(ConfigError, match="control characters"):
        config.load(str(path))


@pytest.mark.timeout(10)
def test_a_fifo_as_the_config_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "m.conf"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        config.load(str(fifo))


def test_validate_config_checks_that_run_as_exists(tmp_path: Path) -> None:
    path = write(tmp_path / "m.conf", "[queue_manager]\nname = QM1\nrun_as = nosuchuser\n")
    res = subprocess.run([sys.executable, "-m", "mqguard", "validate-config", "--config", str(path)],
                         capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 78 and "run_as = 'nosuchuser': expected an existing user" in res.stderr


def test_data_and_log_dirs_default_to_the_shared_storage(tmp_path: Path) -> None:
    """Contract section 21: empty data_dir/log_dir mean <storage.path>/qmgrs and /logs, never MQ's local default."""
    cfg = config.load(str(write(tmp_path / "m.conf", "[queue_manager]\nname=QM1\n[storage]\npath=/MQHA/\n")))
    assert (cfg.queue_manager.data_dir, cfg.queue_manager.log_dir) == ("/MQHA/qmgrs", "/MQHA/logs")
    assert cfg.queue_manager.lock_wait == 180
    with pytest.raises(ConfigError, match="log_dir = '/MQHA'"):  # the mount point itself is not "below" it
        config.load(str(write(tmp_path / "n.conf", "[queue_manager]\nname=QM1\nlog_dir=/MQHA\n[storage]\npath=/MQHA\n")))
    with pytest.raises(ConfigError, match="lock_wait"):
        config.load(str(write(tmp_path / "o.conf", "[queue_manager]\nname=QM1\nlock_wait=2h\n")))


def test_file_lock_heartbeat_len_is_never_below_15_on_nfs(tmp_path: Path) -> None:
    """IBM support, "IBM MQ: Considerations for EFS on AWS": FileLockHeartBeatLen 15 or more on EFS."""
    assert config.load(str(write(tmp_path / "a.conf", "[queue_manager]\nname=QM1\n"))).queue_manager \
        .file_lock_heartbeat_len == 15
    low = write(tmp_path / "b.conf", "[queue_manager]\nname=QM1\nfile_lock_heartbeat_len = 10\n")
    with pytest.raises(config.ConfigError, match="at least 15 on NFS/EFS"):
        config.load(str(low))
    elsewhere = write(tmp_path / "c.conf", "[queue_manager]\nname=QM1\nfile_lock_heartbeat_len = 0\n"
                                           "[storage]\nfstypes = xfs\n")
    assert config.load(str(elsewhere)).queue_manager.file_lock_heartbeat_len == 0


@pytest.mark.parametrize("name", ["QM1\n", "QM1\r\n", "\nQM1"])
def test_a_queue_manager_name_with_a_line_break_is_refused(name: str) -> None:
    """`$` also matches before a final newline: "QM1\\n" from a command line or an environment passed the check."""
    from mqguard.config.values import validate_qmgr_name

    with pytest.raises(ValueError):
        validate_qmgr_name(name)


@pytest.mark.parametrize("text, seconds", [
    ("7d", 7 * 86400.0), ("1h30m", 5400.0), ("1d12h", 129600.0), ("2m30s", 150.0), ("1.5h", 5400.0),
    ("500ms", 0.5), ("90", 90.0), (" 5m ", 300.0), ("1h 30m", 5400.0), ("1m0.5s", 60.5), ("0s", 0.0),
])
def test_one_duration_grammar_days_and_compounds(text: str, seconds: float) -> None:
    """Issue 27: `history --since 7d` (the help's own example) exited 64; compounds like 1h30m were refused."""
    from mqguard.config.values import parse_duration

    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "h", "1x", "1h1h", "30m1h", "1.5.5s", "-5s", "1e3s", "9999999999d", "1d 2"])
def test_a_duration_that_is_not_one_is_refused(text: str) -> None:
    from mqguard.config.values import parse_duration

    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("seconds, text", [
    (300.0, "5m"), (5400.0, "1h30m"), (86400.0, "1d"), (90061.0, "1d1h1m1s"), (0.5, "500ms"), (60.5, "1m0.5s"),
    (0.0, "0s"), (20.0, "20s"),
])
def test_durations_are_printed_in_the_grammar_they_are_read_in(seconds: float, text: str) -> None:
    """`--advise` printed 5m00.0s, which the configuration refused: what mqguard prints, it reads back."""
    from mqguard.base.durations import format_duration
    from mqguard.config.values import parse_duration

    assert format_duration(seconds) == text
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
