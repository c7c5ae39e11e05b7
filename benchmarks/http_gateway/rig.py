"""The rig: the fake upstream, LiteLLM in its own venv, and our server under daphne.

Every server is a child process on a free loopback port, started in its own session and
stopped by its pid when the benchmark ends. Nothing here imports Django or LiteLLM: our
server is configured through its environment and `manage.py`, LiteLLM through its config
file and CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import common
from .upstream import words

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).with_name("litellm-requirements.txt")
LITELLM_VENV = ROOT / ".venv-litellm"
MODEL = "gpt-4.1-mini"  # what both proxies send upstream; genai-prices and LiteLLM price it
ALIAS = "fast"  # what the client asks both proxies for
UPSTREAM_KEY = "sk-bench"
LITELLM_KEY = "sk-litellm-bench"  # LiteLLM's master key (no database: no virtual keys)
PATH = "/v1/chat/completions"
READY_TIMEOUT = 180.0

Log = Callable[[str], None]


def say(line: str) -> None:
    """Progress goes to stderr: stdout carries the table or the JSON."""
    sys.stderr.write(f"[http_gateway] {line}\n")
    sys.stderr.flush()


def reply(tokens: int) -> str:
    """The text every answer must carry, proxied or not."""
    return "".join(words(tokens))


def _http(
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310 - loopback http only
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def _wait_ready(
    process: subprocess.Popen[bytes], probe: Callable[[], bool], what: str, log_path: Path
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with code {process.returncode}; last lines of {log_path}:\n"
                + common.log_tail(log_path)
            )
        with suppress(OSError):
            if probe():
                return
        time.sleep(0.25)
    raise RuntimeError(
        f"{what} did not answer within {READY_TIMEOUT:g} s:\n" + common.log_tail(log_path)
    )


# --- the upstream ---------------------------------------------------------------------------


@dataclass
class Upstream:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def configure(self, *, delay_ms: float, interval_ms: float = 0.0, tokens: int = 20) -> None:
        shape = {"delay_ms": delay_ms, "interval_ms": interval_ms, "tokens": tokens}
        status, _ = _http("POST", f"{self.url}/_bench/config", shape)
        if status != 200:
            raise RuntimeError(f"the upstream refused its configuration ({status})")

    def stats(self) -> dict[str, Any]:
        _, body = _http("GET", f"{self.url}/_bench/stats")
        return dict(json.loads(body))

    def reset(self) -> None:
        _http("POST", f"{self.url}/_bench/reset", {})

    def target(self, tokens: int = 20) -> dict[str, Any]:
        """The load generator's view of a direct call."""
        return {
            "name": "direct",
            "port": self.port,
            "path": PATH,
            "model": MODEL,
            "key": UPSTREAM_KEY,
            "reply": reply(tokens),
            "tokens": tokens,
        }


@contextmanager
def upstream() -> Iterator[Upstream]:
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.http_gateway.upstream"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the fake upstream did not start")
        yield Upstream(port=int(json.loads(line)["port"]), process=process)
    finally:
        if process.stdin is not None:
            with suppress(OSError):
                process.stdin.close()  # it serves until its stdin closes
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            common.stop_process_group(process)


# --- LiteLLM --------------------------------------------------------------------------------


def ensure_litellm_venv(log: Log = say) -> Path:
    """.venv-litellm with the pinned LiteLLM, created or updated when the pins changed.

    Its own venv: LiteLLM's proxy pins versions of FastAPI, httpx, openai … that must not
    meet the project's. Returns the venv's python.
    """
    wanted = REQUIREMENTS.read_text()
    stamp = LITELLM_VENV / ".installed-requirements"
    python = LITELLM_VENV / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        log(f"creating {LITELLM_VENV.relative_to(ROOT)} (first run; a minute or two)")
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(LITELLM_VENV)], check=True)  # noqa: S603 - argv built here, no outside input
        # Keep the venv out of git without touching the project's .gitignore.
        (LITELLM_VENV / ".gitignore").write_text("*\n")
    log(f"installing {REQUIREMENTS.relative_to(ROOT)} into {LITELLM_VENV.relative_to(ROOT)}")
    subprocess.run(  # noqa: S603 - argv built here, no outside input
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    stamp.write_text(wanted)
    return python


def litellm_versions(python: Path) -> dict[str, str]:
    names = ["litellm", "fastapi", "uvicorn", "uvloop", "httpx", "aiohttp", "openai"]
    script = (
        "import json, importlib.metadata as m\n"
        f"print(json.dumps({{n: m.version(n) for n in {names!r}}}))"
    )
    out = subprocess.run([str(python), "-c", script], check=True, capture_output=True, text=True)  # noqa: S603 - argv built here, no outside input
    return dict(json.loads(out.stdout))


def litellm_config(upstream_port: int) -> str:
    """One model group, `fast`, mapped to the fake upstream as an OpenAI deployment.

    No database and no Redis: LiteLLM's lightest setup (master key only, no spend logs, no
    virtual keys). No retries, as for our gateway in this benchmark; errors only in the log.
    """
    config = {
        "model_list": [
            {
                "model_name": ALIAS,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                    "api_key": UPSTREAM_KEY,
                },
            }
        ],
        "litellm_settings": {"num_retries": 0, "request_timeout": 60, "set_verbose": False},
        "general_settings": {"master_key": LITELLM_KEY},
    }
    return json.dumps(config, indent=2)  # JSON is YAML


@dataclass
class Server:
    """A proxy under test: how the load generator reaches it, and where it logs."""

    name: str
    target: dict[str, Any]
    log_path: Path
    process: subprocess.Popen[bytes]
    info: dict[str, Any] = field(default_factory=dict)


@contextmanager
def litellm_proxy(python: Path, upstream_port: int, workdir: Path) -> Iterator[Server]:
    port = common.free_port()
    config = workdir / "litellm.yaml"
    config.write_text(litellm_config(upstream_port))
    log_path = workdir / "litellm.log"
    env = common.clean_env(
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # no fetch of the price list from the internet
        LITELLM_LOG="ERROR",  # also uvicorn's level: no access log
        LITELLM_MODE="PRODUCTION",  # no .env loading
    )
    argv = [str(python.parent / "litellm"), "--config", str(config)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - argv built here, no outside input
            argv, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(
            process,
            lambda: _http("GET", f"{url}/health/liveliness", timeout=2)[0] == 200,
            "LiteLLM",
            log_path,
        )
        target = {
            "name": "litellm",
            "port": port,
            "path": PATH,
            "model": ALIAS,
            "key": LITELLM_KEY,
            "reply": reply(20),
        }
        _smoke(url, target, host=None)
        yield Server("litellm", target, log_path, process, {"argv": argv[1:]})
    finally:
        common.stop_process_group(process)


def _smoke(url: str, target: dict[str, Any], host: str | None) -> None:
    """One call before measuring: a misconfigured proxy fails here, loudly."""
    headers = {"authorization": f"Bearer {target['key']}"}
    if host:
        headers["host"] = host
    body = {"model": target["model"], "messages": [{"role": "user", "content": "smoke"}]}
    status, answer = _http("POST", url + target["path"], body, headers=headers, timeout=30)
    if status != 200:
        raise RuntimeError(f"{target['name']}: smoke call answered {status}: {answer[:500]!r}")
    text = json.loads(answer)["choices"][0]["message"]["content"]
    if text != target["reply"]:
        raise RuntimeError(f"{target['name']}: smoke call answered {text!r}")


# --- ours -----------------------------------------------------------------------------------

ROUTING = f"""\
# The benchmark's routing: `{ALIAS}` goes to OpenAI (the fake upstream), nothing else.
aliases:
  {ALIAS}:
    description: benchmark
    primary: {{provider: openai, model: {MODEL}}}
    offline: {{provider: local, model: local-fast}}
    max_tokens: 4096
"""

# Limits too high to refuse anything: the workspace's daily tokens and per-user requests.
SETUP = """
from apps.workspaces.models import AISettings, Workspace
workspace = Workspace.objects.get(slug="acme")
AISettings.objects.update_or_create(
    workspace=workspace,
    defaults={"daily_token_limit": 10**15, "user_daily_request_limit": 2_000_000_000},
)
"""


def _manage(env: dict[str, str], *args: str, log: Path) -> str:
    out = subprocess.run(  # noqa: S603 - argv built here, no outside input
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    with log.open("a") as f:
        f.write(f"$ manage.py {' '.join(args)}\n{out.stdout}{out.stderr}\n")
    if out.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{out.stdout}{out.stderr}"[-3000:])
    return out.stdout


@contextmanager
def private_services(workdir: Path) -> Iterator[tuple[dict[str, str], list[int]]]:
    """A private PostgreSQL and Redis (own data dirs and ports): `make run` and the tests are
    left alone. Yields DATABASE_URL and REDIS_URL, and the two servers' pids."""
    from aisaas.devstack import EmbeddedPostgres, EmbeddedRedis

    (workdir / "postgres").mkdir()
    postgres = EmbeddedPostgres(data_dir=workdir / "postgres" / "data", port=common.free_port())
    redis = EmbeddedRedis(data_dir=workdir / "redis", port=common.free_port())
    try:
        postgres.start()
        redis.start()
        pids = [
            _pid_file(postgres.data_dir / "postmaster.pid"),
            _pid_file(redis.data_dir / "redis.pid"),
        ]
        yield {"DATABASE_URL": postgres.url, "REDIS_URL": redis.url}, [p for p in pids if p]
    finally:
        redis.stop()
        postgres.stop()


def _pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@contextmanager
def aisaas_server(upstream_port: int, workdir: Path, *, log_level: str) -> Iterator[Server]:
    """Our server as production runs it: daphne on aisaas.asgi:application with the production
    settings, a private PostgreSQL and Redis, `fast` routed to OpenAI at the fake upstream."""
    routing = workdir / "llm-routing.yaml"
    routing.write_text(ROUTING)
    log_path = workdir / "aisaas.log"
    port = common.free_port()
    with private_services(workdir) as (urls, service_pids):
        env = common.clean_env(
            DJANGO_SETTINGS_MODULE="aisaas.settings.production",
            SECRET_KEY=hashlib.sha256(os.urandom(32)).hexdigest(),
            FIELD_ENCRYPTION_KEYS=_fernet_key(),
            SITE_URL=f"http://localhost:{port}",
            LOG_LEVEL=log_level,
            OPENAI_API_KEY=UPSTREAM_KEY,
            OPENAI_BASE_URL=f"http://127.0.0.1:{upstream_port}/v1",
            LLM_ROUTING_FILE=str(routing),
            **urls,
        )
        say("our server: migrate_schemas, seed_demo, API key")
        _manage(env, "migrate_schemas", "--executor", "standard", "-v", "0", log=log_path)
        _manage(env, "seed_demo", log=log_path)
        _manage(env, "shell", "-c", SETUP, log=log_path)
        created = _manage(
            env,
            "apikey",
            "create",
            "--workspace",
            "acme",
            "--name",
            "bench",
            "--rate-limit",
            "100000",  # per minute, the most it takes: 1,667/s, above any step here
            "--json",
            log=log_path,
        )
        key = str(json.loads(created)["key"])
        argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        argv.append("aisaas.asgi:application")
        with log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - argv built here, no outside input
                argv,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            host = f"localhost:{port}"
            # Not /healthz: it also wants a Celery worker, which this benchmark does not run.
            models = {"host": host, "authorization": f"Bearer {key}"}
            _wait_ready(
                process,
                lambda: _http("GET", f"{url}/v1/models", headers=models, timeout=2)[0] == 200,
                "daphne",
                log_path,
            )
            target = {
                "name": "aisaas",
                "port": port,
                "path": PATH,
                "model": ALIAS,
                "key": key,
                "host_header": host,
                "reply": reply(20),
            }
            _smoke(url, target, host=host)
            info = {"argv": argv[1:], "service_pids": service_pids}
            yield Server("aisaas", target, log_path, process, info)
        finally:
            common.stop_process_group(process)


@contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="aisaas-bench-http-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
