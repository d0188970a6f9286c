"""Render deploy/nginx/*.conf.template and run Debian's nginx as an ordinary foreground process.

Used by tests/e2e/test_nginx_cache.py and bench/nginx_cache.py, and by hand to try the setup:

    donations serve --port 8000 &
    python deploy/nginx/local.py --upstream 127.0.0.1:8000 --port 8080

Everything nginx writes (rendered config, cache, temp files, pid, logs) stays under one prefix
directory (a new temporary one unless --prefix is given). The substitution is envsubst's:
only ${NAME} placeholders whose NAME is given are replaced; nginx's own $variables stay.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
SITE_TEMPLATE = HERE / "donations.conf.template"
MAIN_TEMPLATE = HERE / "standalone.conf.template"
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def nginx_binary() -> str | None:
    """Debian's nginx (in /usr/sbin, which a non-root PATH may lack), or None."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def render(template: str, values: Mapping[str, str]) -> str:
    """Replace ${NAME} for every NAME in values (as `envsubst '${NAME} ...'`); a placeholder
    left unreplaced is an error here, where envsubst would silently keep it."""
    out = PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)
    # Comments may mention placeholders (the envsubst example); directives may not.
    left = {
        m.group(1)
        for line in out.splitlines()
        if not line.lstrip().startswith("#")
        for m in PLACEHOLDER.finditer(line)
    }
    if left:
        raise ValueError(f"no value for {', '.join(sorted(left))}")
    return out


class LocalNginx:
    """nginx with the donations site in front of `upstream`, listening on 127.0.0.1:`port`."""

    def __init__(
        self,
        prefix: Path,
        upstream: str,
        port: int,
        *,
        workers: int = 1,
        access_log: bool = True,
        site_values: Mapping[str, str] | None = None,
    ) -> None:
        self.prefix, self.upstream, self.port = prefix, upstream, port
        self.url = f"http://127.0.0.1:{port}"
        self.workers, self.access_log = workers, access_log
        self.site_values = dict(site_values or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = prefix / "nginx.conf"
        self.log = prefix / "logs" / "error.log"

    def write_config(self) -> Path:
        for sub in ("cache", "logs", "tmp"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        site = {
            "DONATIONS_LISTEN": f"127.0.0.1:{self.port}",
            "DONATIONS_SERVER_NAME": "localhost",
            "DONATIONS_UPSTREAM": self.upstream,
            "DONATIONS_CACHE_DIR": str(self.prefix / "cache"),
            "DONATIONS_ACCESS_LOG": str(self.prefix / "logs" / "access.log")
            if self.access_log
            else "/dev/null",
            **self.site_values,
        }
        (self.prefix / "donations.conf").write_text(render(SITE_TEMPLATE.read_text(), site))
        main = {
            # Run as root (a container, CI), nginx would hand its workers to `nobody`, who may
            # not write into this prefix; as anyone else the directive is meaningless.
            "NGINX_USER": "user root;" if os.geteuid() == 0 else "",
            "NGINX_WORKERS": str(self.workers),
            "NGINX_PREFIX": str(self.prefix),
        }
        self.conf.write_text(render(MAIN_TEMPLATE.read_text(), main))
        return self.conf

    def command(self, *extra: str) -> list[str]:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx)")
        directives = f"daemon off; pid {self.prefix}/nginx.pid; error_log stderr;"
        return [binary, "-p", f"{self.prefix}/", "-c", str(self.conf), "-g", directives, *extra]

    def check(self) -> None:
        """`nginx -t` on the rendered config: raises with nginx's complaint."""
        proc = subprocess.run(  # noqa: S603
            self.command("-t"), capture_output=True, text=True, check=False, timeout=30
        )
        if proc.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{proc.stderr}")

    def start(self, timeout: float = 15.0) -> LocalNginx:
        self.write_config()
        self.check()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n{self.tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.5),
            ):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on {self.port} within {timeout:.0f}s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGQUIT)  # graceful: finish the requests in flight
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", default="127.0.0.1:8000", help="the app (host:port)")
    parser.add_argument("--port", type=int, default=8080, help="nginx's port on 127.0.0.1")
    parser.add_argument("--prefix", type=Path, help="directory for config, cache and logs")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    prefix = args.prefix or Path(tempfile.mkdtemp(prefix="donations-nginx-"))
    nginx = LocalNginx(prefix.resolve(), args.upstream, args.port, workers=args.workers)
    signal.signal(signal.SIGTERM, _interrupt)  # stop nginx on SIGTERM as on Ctrl+C
    try:
        nginx.start()
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"nginx on {nginx.url} -> {args.upstream}; config, cache and logs in {prefix}")
    print("Ctrl+C stops it")
    try:
        while nginx.proc is not None and nginx.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        nginx.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
