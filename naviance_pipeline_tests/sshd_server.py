"""A real OpenSSH sshd on loopback, chrooted to a throw-away folder, for SFTP delivery tests.

Follows recipe B.2 of ``notes/sftp-delivery.md``: needs root and ``/usr/sbin/sshd`` (Debian's
``openssh-server``); a dedicated system user (created once, idempotent) logs in by key or by
password and only gets ``internal-sftp`` inside ``<chroot>/upload``. Stdlib only, so any test
folder can use it; ``sftp_server_fixture`` is the body of the session-scoped pytest fixture.

Usage::

    with SSHDServer() as server:
        server.port, server.user, server.password, server.known_hosts_text, server.upload_dir
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SSHD = "/usr/sbin/sshd"  # sshd refuses to re-exec unless started by absolute path
SSH_KEYGEN = "/usr/bin/ssh-keygen"
# Each server gets its own system user (removed again by cleanup): two test sessions on one
# machine (a benchmark beside a test run) must not reset each other's password.
TEST_USER_PREFIX = "nvsftp-"
CHROOT_PARENT = "/srv"  # every chroot path component must be root-owned and not under /tmp
START_TIMEOUT = 60.0  # a hang guard for an sshd that never answers; the wait ends when it does


def unavailable_reason() -> str | None:
    """Why a real sshd cannot run here (None when it can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the loopback OpenSSH sftp server needs root (chroot, user switch)"
    for tool in (SSHD, SSH_KEYGEN):
        if not os.access(tool, os.X_OK):
            return f"{tool} is missing: install openssh-server and openssh-client"
    for tool in ("useradd", "usermod", "userdel", "chpasswd"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (needed to create the sftp test user)"
    if not os.path.isdir(CHROOT_PARENT):
        return f"{CHROOT_PARENT} does not exist (the chroot must live outside /tmp)"
    return None


def _run(*args: str, input_text: str | None = None) -> str:
    done = subprocess.run(args, input=input_text, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _ensure_user(user: str) -> None:
    try:
        pwd.getpwnam(user)
    except KeyError:
        _run(
            "useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
            "--shell", "/usr/sbin/nologin", user,
        )  # fmt: skip


def _keygen(path: Path, comment: str, passphrase: str = "") -> None:
    _run(SSH_KEYGEN, "-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f", str(path))


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _descendants(root_pid: int) -> list[int]:
    """Pids below ``root_pid`` (sshd's per-connection [priv] and user session processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # the command name is parenthesised and may hold spaces: fields start after the last ")"
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class SSHDServer:
    """One sshd listening on 127.0.0.1:<free port>; see the module docstring."""

    host = "127.0.0.1"
    remote_upload = "/upload"

    def __init__(self, user: str | None = None) -> None:
        self.user = user or f"{TEST_USER_PREFIX}{secrets.token_hex(4)}"
        self._own_user = user is None
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self.workdir = Path(tempfile.mkdtemp(prefix="naviance-sshd-"))
        self.chroot = Path(tempfile.mkdtemp(prefix="naviance-sftp-test-", dir=CHROOT_PARENT))
        self._proc: subprocess.Popen[bytes] | None = None
        self._other_host_key: Path | None = None

    # --- paths and texts the tests use -------------------------------------------------------
    @property
    def upload_dir(self) -> Path:
        """Local path of the chroot's upload folder (what the client sees as ``/upload``)."""
        return self.chroot / "upload"

    @property
    def client_key_path(self) -> str:
        return str(self.workdir / "client_ed25519")

    @property
    def client_key_text(self) -> str:
        return Path(self.client_key_path).read_text()

    @property
    def host_key_pub_path(self) -> str:
        return str(self.workdir / "host_ed25519.pub")

    def host_key_fingerprint(self) -> str:
        """'SHA256:...' of the host key as ``ssh-keygen -lf`` prints it (the reference)."""
        return _run(SSH_KEYGEN, "-lf", self.host_key_pub_path).split()[1]

    @property
    def known_hosts_text(self) -> str:
        """The pinned line ``[127.0.0.1]:PORT ssh-ed25519 AAAA...``."""
        return self._known_hosts_line(Path(self.host_key_pub_path))

    @property
    def log_path(self) -> Path:
        return self.workdir / "sshd.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def other_known_hosts_text(self) -> str:
        """A known_hosts line for this host and port with a DIFFERENT key (host-key mismatch)."""
        if self._other_host_key is None:
            self._other_host_key = self.workdir / "other_host_ed25519"
            _keygen(self._other_host_key, "other-host")
        return self._known_hosts_line(self._other_host_key.with_suffix(".pub"))

    def _known_hosts_line(self, pub: Path) -> str:
        keytype, blob = pub.read_text().split()[:2]
        return f"[{self.host}]:{self.port} {keytype} {blob}\n"

    def add_authorized_key(self, public_key_line: str) -> None:
        """Allow one more client key (sshd rereads authorized_keys on every login)."""
        with (self.workdir / "authorized_keys").open("a") as handle:
            handle.write(public_key_line.strip() + "\n")

    def make_remote_dir(self, name: str) -> tuple[Path, str]:
        """A fresh folder inside upload/ owned by the test user: (local path, remote path)."""
        local = self.upload_dir / name
        local.mkdir(mode=0o755)
        entry = pwd.getpwnam(self.user)
        os.chown(local, entry.pw_uid, entry.pw_gid)
        return local, f"{self.remote_upload}/{name}"

    # --- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> SSHDServer:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    def start(self) -> SSHDServer:
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege separation
        _ensure_user(self.user)
        # useradd leaves '!' (locked), which sshd with UsePAM no refuses even for key logins;
        # chpasswd both unlocks the account and enables the password login.
        _run("chpasswd", input_text=f"{self.user}:{self.password}\n")
        self._prepare_files()
        for _ in range(3):  # the free port may be taken between probing and sshd's bind
            self.port = _free_port(self.host)
            self._write_config()
            if self._launch():
                return self
        raise RuntimeError(f"sshd did not start:\n{self.log_text()}")

    def _prepare_files(self) -> None:
        _keygen(self.workdir / "host_ed25519", "test-host")
        _keygen(self.workdir / "client_ed25519", "test-client")
        shutil.copy(self.workdir / "client_ed25519.pub", self.workdir / "authorized_keys")
        os.chmod(self.workdir / "authorized_keys", 0o644)
        os.chmod(self.workdir, 0o755)
        os.chmod(self.chroot, 0o755)  # mkdtemp makes 0700: the user could not enter its chroot
        self.upload_dir.mkdir(mode=0o755)
        entry = pwd.getpwnam(self.user)
        os.chown(self.upload_dir, entry.pw_uid, entry.pw_gid)

    def _write_config(self) -> None:
        wd = self.workdir
        lines = [
            f"Port {self.port}",
            f"ListenAddress {self.host}",
            f"HostKey {wd / 'host_ed25519'}",
            f"PidFile {wd / 'sshd.pid'}",
            f"AuthorizedKeysFile {wd / 'authorized_keys'}",
            "StrictModes no",  # the keys live under /tmp (mode 1777)
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            "UsePAM no",
            f"AllowUsers {self.user}",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            "PermitTTY no",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
            f"ChrootDirectory {self.chroot}",
            f"ForceCommand internal-sftp -d {self.remote_upload}",
        ]
        if self._supports("PerSourcePenalties=no"):
            # OpenSSH >= 9.8 would refuse loopback logins for a while after failed-auth tests
            lines.append("PerSourcePenalties no")
        lines += [f"Match User {self.user}", "    PasswordAuthentication yes"]
        (wd / "sshd_config").write_text("\n".join(lines) + "\n")

    def _supports(self, option: str) -> bool:
        probe = [SSHD, "-t", "-f", "/dev/null", "-o", option, "-o", f"HostKey={self.workdir}/x"]
        done = subprocess.run(probe, capture_output=True, text=True, check=False)
        return "Bad configuration option" not in done.stderr

    def _launch(self) -> bool:
        config = str(self.workdir / "sshd_config")
        _run(SSHD, "-t", "-f", config)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", config], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                if "Address already in use" in self.log_text():
                    return False
                raise RuntimeError(f"sshd exited with {self._proc.returncode}:\n{self.log_text()}")
            if self._banner_ready():
                return True
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sshd did not answer within {START_TIMEOUT} s:\n{self.log_text()}")

    def _banner_ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                return sock.recv(64).startswith(b"SSH-2.0-")
        except OSError:
            return False

    def kill_sessions(self, sig: signal.Signals = signal.SIGKILL) -> int:
        """Signal every per-connection sshd process (not the listener); returns how many."""
        if self._proc is None:
            return 0
        pids = _descendants(self._proc.pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # ended meanwhile
                os.kill(pid, sig)
        return len(pids)

    def stop(self) -> None:
        """End the sessions first: SIGTERM to the listener leaves them running."""
        if self._proc is None:
            return
        self.kill_sessions()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def cleanup(self) -> None:
        """Stop, remove (or re-lock) the test user and remove the chroot and work folder."""
        self.stop()
        if self._own_user:
            subprocess.run(["userdel", self.user], capture_output=True, check=False)
        else:
            subprocess.run(["usermod", "-p", "*", self.user], capture_output=True, check=False)
        shutil.rmtree(self.chroot, ignore_errors=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


def sftp_server_fixture() -> Iterator[SSHDServer]:
    """Body of the session-scoped ``sftp_server`` pytest fixture; skips when sshd cannot run.

    Wrap it where needed: ``sftp_server = pytest.fixture(scope="session",
    name="sftp_server")(sftp_server_fixture)``. pytest is imported lazily so that this module
    stays stdlib-only for non-pytest callers.
    """
    reason = unavailable_reason()
    if reason:
        import pytest

        pytest.skip(reason)
    with SSHDServer() as server:
        yield server
