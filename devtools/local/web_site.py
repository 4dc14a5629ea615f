"""The dashboard as files to serve: the page, its own code, and the chart library.

One list, used by the local server ``make run`` starts and by ``make deploy-web``,
so what is tested locally is what is published. ``config.json`` is not a file in
the repository: it says where the three services are, and is written for each
place the page is served from.
"""

from __future__ import annotations

import gzip
import http.client
import http.server
import json
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
CHART_LIBRARY = WEB / "node_modules" / "lightweight-charts" / "dist" / "lightweight-charts.standalone.production.mjs"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
}


class MissingDependencies(RuntimeError):
    pass


def site_files() -> dict[str, Path]:
    """URL path (without the leading slash) -> file."""
    if not CHART_LIBRARY.exists():
        raise MissingDependencies("the chart library is not installed: run 'make web-deps' (npm ci in web/)")
    files = {"index.html": WEB / "index.html", "app.css": WEB / "app.css"}
    for path in sorted((WEB / "src").rglob("*.js")):
        files[path.relative_to(WEB).as_posix()] = path
    files["vendor/lightweight-charts.mjs"] = CHART_LIBRARY
    return files


def own_code_sizes() -> dict[str, int]:
    """Gzipped bytes of the page's own HTML, JS and CSS (the chart library apart)."""
    return {
        name: len(gzip.compress(path.read_bytes(), 9))
        for name, path in site_files().items()
        if not name.startswith("vendor/")
    }


AUTH_FIELDS = ("region", "userPoolId", "clientId", "endpoint")


def config_for(bases: dict[str, str], auth: dict[str, str]) -> bytes:
    """Where the three services are, and the user pool the page signs in with: its region,
    pool and app client ids, and the cognito-idp endpoint (moto's, locally)."""
    missing = [name for name in AUTH_FIELDS if not auth.get(name)]
    if missing:
        raise ValueError(f"the page's auth config lacks {', '.join(missing)}")
    config = {service: bases.get(service, "") for service in ("quote", "backtest", "alerts")}
    config["auth"] = {name: auth[name] for name in AUTH_FIELDS}
    return json.dumps(config).encode()


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host"}


class WebServer:
    """The site on loopback, and ``/api/<service>...`` routed to each service, as
    the CloudFront distribution routes them in production: the page and the
    APIs share one origin, so the browser makes no cross-origin calls (and sees
    an authorizer's 401/403 as such, which a CORS-less gateway answer would hide).
    """

    def __init__(self, services: dict[str, str], port: int = 0, host: str = "127.0.0.1", auth: dict | None = None):
        from urllib.parse import urlparse

        files = site_files()
        routes = {f"/api/{name}": urlparse(url) for name, url in services.items()}
        server_self = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def _route(self):
                path = self.path.split("?", 1)[0]
                for prefix, target in routes.items():
                    if path == prefix or path.startswith(prefix + "/"):
                        return target
                return None

            def _proxy(self, target):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                try:
                    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    status, payload = response.status, response.read()
                    out = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}]
                    conn.close()
                except OSError as exc:
                    # As CloudFront answers when an origin is unreachable.
                    status, payload = (
                        502,
                        f"the service behind {self.path.split('?')[0]} is unreachable: {exc}".encode(),
                    )
                    out = [("Content-Type", "text/plain; charset=utf-8")]
                self.send_response(status)
                for name, value in out:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _any(self):
                target = self._route()
                if target is not None:
                    self._proxy(target)
                elif self.command in ("GET", "HEAD"):
                    self._file()
                else:
                    self.send_error(405)

            do_GET = do_HEAD = do_POST = do_PATCH = do_DELETE = do_OPTIONS = _any  # noqa: N815 - the stdlib's names

            def _file(self):
                name = self.path.split("?", 1)[0].lstrip("/") or "index.html"
                if name == "config.json":
                    body, kind = server_self.config, CONTENT_TYPES[".json"]
                elif name in files:
                    path = files[name]
                    body, kind = path.read_bytes(), CONTENT_TYPES[path.suffix]
                else:
                    self.send_error(404)
                    return
                # Compressed as CloudFront serves it, so local timings are like the real ones.
                compressed = "gzip" in self.headers.get("Accept-Encoding", "")
                if compressed:
                    body = gzip.compress(body, 6)
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Cache-Control", "no-cache")
                if compressed:
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
                pass

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}/"
        # Every service at the page's own origin.
        self.config = config_for({name: self.url.rstrip("/") for name in services}, auth or {})
        threading.Thread(target=self._server.serve_forever, daemon=True, name="web").start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
