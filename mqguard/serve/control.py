"""The local control socket (docs/operating.md): ``mqguard pause | resume | switchover``.

A Unix stream socket, mode 0660, group ``[control] group``. Each connection
carries one request and one reply, each a line of JSON:

    -> {"v": 1, "op": "pause", "seconds": 3600, "reason": "fix pack"}
    <- {"v": 1, "ok": true, "message": "paused until 2026-11-27 12:00:00 UTC (fix pack)"}

The caller's credentials come from the kernel (SO_PEERCRED): root or a member
of the group may ask; anyone else gets "permission denied" and the attempt is
logged. Requests are served on their own threads (a switchover takes a while),
never on the supervision loop, at most a few at a time.
"""

from __future__ import annotations

import enum
import errno
import grp
import json
import logging
import os
import pwd
import select
import socket
import stat
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

from mqguard.base.untrusted import load_json, loggable

log = logging.getLogger(__name__)

PROTOCOL = 1


class ControlOp(str, enum.Enum):
    """The operations the control socket takes: the one list (the CLI and the daemon use it)."""

    PAUSE = "pause"
    RESUME = "resume"
    SWITCHOVER = "switchover"
    DRILL = "drill"


OPERATIONS = tuple(op.value for op in ControlOp)
MAX_LINE = 16 * 1024
REQUEST_DEADLINE = 5.0  # to send the request line
MAX_HANDLERS = 16  # requests served at once, all members together (each is a thread)
MEMBER_HANDLERS = 2  # ... and by any one user: silent connections of one member never lock the others out
ROOT_HANDLERS = 2


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int

    @property
    def name(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return f"uid {self.uid}"


@dataclass(frozen=True)
class Request:
    op: str
    peer: Peer
    args: Dict[str, Any] = field(default_factory=dict)
    say: Callable[[str], None] = field(default=lambda text: None, compare=False)  # a step, as it happens


Reply = Tuple[bool, str]
Handler = Callable[[Request], Reply]


def peer_of(conn: socket.socket) -> Peer:
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


def may_control(peer: Peer, group: str) -> bool:
    """root, or a member of ``group`` (primary or supplementary, per the user database)."""
    if peer.uid == 0:
        return True
    try:
        gid = grp.getgrnam(group).gr_gid
        user = pwd.getpwuid(peer.uid)
    except KeyError:
        return False
    return gid == user.pw_gid or gid in os.getgrouplist(user.pw_name, user.pw_gid)


def parse_request(line: bytes) -> Tuple[str, Dict[str, Any]]:
    """(op, arguments); ValueError with what is wrong."""
    try:
        doc = load_json(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("not a JSON request") from None
    if not isinstance(doc, dict) or doc.get("v") != PROTOCOL:
        raise ValueError(f"unsupported protocol (this mqguard speaks version {PROTOCOL})")
    op = doc.get("op")
    if op not in OPERATIONS:
        raise ValueError(f"unknown operation {loggable(str(op))!r}")
    return str(op), {k: v for k, v in doc.items() if k not in ("v", "op")}


class ControlServer:
    def __init__(self, path: str, group: str, handler: Handler) -> None:
        self.path = path
        self.group = group
        self.handler = handler
        self.sock: Optional[socket.socket] = None
        self._stop = threading.Event()
        self._root_slots = threading.BoundedSemaphore(ROOT_HANDLERS)  # root is never locked out by others
        self._busy: Dict[int, int] = {}  # uid -> requests of that user being served now (not root)
        self._busy_lock = threading.Lock()
        self._refusals = 0
        self._last_refusal_log = -1.0
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Bind (replacing a stale socket of a previous mqguard); OSError when that is not possible."""
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):  # under systemd, RuntimeDirectory= made it (mqm:mqm 0750); by hand, make it
            os.makedirs(parent, 0o750, exist_ok=True)
            self._give_group(parent)
        self._clear_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o117)  # born 0660: never briefly open to others
        try:
            sock.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o660)
        self._give_group(self.path)
        sock.listen(16)
        self.sock = sock
        self._thread = threading.Thread(target=self._serve, name="control-socket", daemon=True)
        self._thread.start()
        log.info("control socket %s (mode 0660, group %s)", self.path, self.group)

    def _give_group(self, path: str) -> None:
        try:
            os.chown(path, -1, grp.getgrnam(self.group).gr_gid)
        except (KeyError, PermissionError) as exc:
            log.warning("control socket: cannot give %s group %s (%s); only root and %s may use it",
                        path, self.group, exc, pwd.getpwuid(os.geteuid()).pw_name)

    def _clear_stale(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(errno.EEXIST, f"{self.path} exists and is not a socket; not replacing it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(self.path)
        except OSError:
            os.unlink(self.path)  # nobody listens: left by a killed mqguard
            return
        finally:
            probe.close()
        raise OSError(errno.EADDRINUSE, f"another mqguard answers on {self.path}")

    def stop(self) -> None:
        self._stop.set()
        if self.sock is not None:
            self.sock.close()
            try:
                os.unlink(self.path)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(2.0)

    def _serve(self) -> None:
        if self.sock is None:
            return
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([self.sock], [], [], 0.5)
                if not readable:
                    continue
                conn, _ = self.sock.accept()
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.1)  # e.g. EMFILE: do not spin
                continue
            self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        """Who is it (SO_PEERCRED, instant), before any slot is taken or anything is read: a refused peer costs
        nothing, and root has slots of its own, so silent connections of others never lock root out."""
        try:
            peer = peer_of(conn)
        except OSError:
            conn.close()
            return
        if not may_control(peer, self.group):
            self._refused(peer)
            _reply(conn, False, f"permission denied: only root and members of group {self.group} may pause, "
                                "resume, switch over or drill", timeout=0.5)
            conn.close()
            return
        if not self._take_slot(peer.uid):
            _reply(conn, False, "busy: other control requests are being served; try again", timeout=0.5)
            conn.close()
            return
        threading.Thread(target=self._handle, args=(conn, peer), name="control-request", daemon=True).start()

    def _take_slot(self, uid: int) -> bool:
        """Root has slots of its own; every other user at most MEMBER_HANDLERS, all of them MAX_HANDLERS."""
        if uid == 0:
            return self._root_slots.acquire(blocking=False)
        with self._busy_lock:
            if self._busy.get(uid, 0) >= MEMBER_HANDLERS or sum(self._busy.values()) >= MAX_HANDLERS:
                return False
            self._busy[uid] = self._busy.get(uid, 0) + 1
            return True

    def _give_back(self, uid: int) -> None:
        if uid == 0:
            self._root_slots.release()
            return
        with self._busy_lock:
            left = self._busy.get(uid, 1) - 1
            if left > 0:
                self._busy[uid] = left
            else:
                self._busy.pop(uid, None)

    def _refused(self, peer: Peer) -> None:
        now = time.monotonic()
        self._refusals += 1
        if now - self._last_refusal_log >= 1.0:  # a flood of refused connects must not flood the log
            log.warning("control socket: refused a request from %s (uid %d, pid %d): not root or a member of "
                        "group %s (%d refused since the last such line)", peer.name, peer.uid, peer.pid, self.group,
                        self._refusals)
            self._last_refusal_log, self._refusals = now, 0

    def _handle(self, conn: socket.socket, peer: Peer) -> None:
        try:
            with conn:
                line = _read_line(conn, time.monotonic() + REQUEST_DEADLINE)
                try:
                    op, args = parse_request(line)
                except ValueError as exc:
                    _reply(conn, False, f"bad request: {exc}")
                    return
                said = (lambda text: _progress(conn, text)) if args.pop("progress", False) is True else (
                    lambda text: None)
                try:
                    ok, message = self.handler(Request(op, peer, args, said))
                except Exception as exc:  # a bug must not kill the socket thread
                    log.exception("control request %s failed", op)
                    ok, message = False, f"failed: {exc}"
                _reply(conn, ok, message)
        except OSError as exc:
            log.info("control socket: a client went away: %s", exc)
        finally:
            self._give_back(peer.uid)


def _read_line(conn: socket.socket, deadline: float) -> bytes:
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or len(buf) > MAX_LINE:
            raise OSError(errno.ETIMEDOUT, "no complete request line in time")
        conn.settimeout(left)
        chunk = conn.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\n", 1)[0]


def _progress(conn: socket.socket, text: str) -> None:
    """A step of a long request, as it happens (only to a client that asked: an older one reads one line)."""
    try:
        conn.settimeout(2.0)
        conn.sendall(json.dumps({"v": PROTOCOL, "progress": text[:500]}).encode() + b"\n")
    except OSError:
        pass  # the client went away: the request goes on, its result is logged


def _reply(conn: socket.socket, ok: bool, message: str, timeout: float = 5.0) -> None:
    try:
        conn.settimeout(timeout)
        conn.sendall(json.dumps({"v": PROTOCOL, "ok": ok, "message": message}).encode() + b"\n")
    except OSError:
        pass


# ------------------------------------------------------------------- client

class NotRunning(Exception):
    pass


def ask(path: str, op: str, timeout: float, on_progress: Optional[Callable[[str], None]] = None,
        **args: Any) -> Reply:
    """One request to the daemon; NotRunning when nobody answers, PermissionError when the socket is closed to us.
    ``on_progress`` hears each step of a long request (a switchover) as the daemon takes it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    deadline = time.monotonic() + timeout
    try:
        sock.settimeout(5.0)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunning(f"mqguard is not running (nothing answers on {path})") from None
        try:
            extra = {"progress": True} if on_progress is not None else {}
            sock.sendall(json.dumps({"v": PROTOCOL, "op": op, **args, **extra}).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before it read anything (permission denied, busy): its answer is waiting to be read
        reader = _LineReader(sock)
        for _ in range(1000):  # bounded: a daemon says at most a few dozen steps
            line = reader.line(deadline)
            if not line:
                return False, "mqguard closed the connection without an answer"
            try:
                doc = load_json(line)
                if isinstance(doc, dict) and "progress" in doc and "ok" not in doc:
                    if on_progress is not None:
                        on_progress(loggable(str(doc["progress"]), 500))
                    continue
                return bool(doc["ok"]), str(doc["message"])
            except (ValueError, KeyError, TypeError):
                return False, f"unexpected answer from mqguard: {loggable(line.decode('utf-8', 'replace'))[:200]}"
        return False, "mqguard said too much without an answer"
    finally:
        sock.close()


class _LineReader:
    """Lines from a socket, each bounded, until a deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def line(self, deadline: float) -> bytes:
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or len(self.buf) > MAX_LINE:
                raise OSError(errno.ETIMEDOUT, "no answer in time")
            self.sock.settimeout(left)
            chunk = self.sock.recv(4096)
            if not chunk:
                out, self.buf = self.buf, b""
                return out
            self.buf += chunk
        out, self.buf = self.buf.split(b"\n", 1)
        return out
