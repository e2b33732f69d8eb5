"""What can be checked of the container image without Docker: install path, ports, user, health, volumes."""

import re
import shlex
import socket
from pathlib import Path

from ferret.cli import main
from ferret.server.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions (continuation lines joined, comments dropped), per build stage."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            out.append([])
        out[-1].append((keyword.upper(), rest.strip()))
    return out


def args_of(stage, keyword):
    return [rest for k, rest in stage if k == keyword]


def test_multi_stage_and_installs_the_way_the_readme_does():
    build, runtime = stages()[1], stages()[-1]
    assert len(stages()) - 1 >= 2
    install = [r for r in args_of(build, "RUN") if "make install" in r]
    assert install, "the build stage installs with `make install`"
    readme = (ROOT / "README.md").read_text()
    assert "make install" in readme and "docker build" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^install: \$\(STAMP\)$", makefile, re.M), "make install = the setup `make test` runs"
    assert "TORCH_INDEX" in install[0] and "cpu)" in install[0] and "cuda)" in install[0]
    assert any("VARIANT=cpu" in a for a in args_of(build, "ARG"))
    # The slim runtime gets no compilers: only the build stage installs build tools.
    assert not any("build-essential" in r for r in args_of(runtime, "RUN"))
    assert any("--from=build" in c for c in args_of(runtime, "COPY"))


def test_exposed_ports_are_the_configured_ones_and_the_server_listens_on_all_interfaces():
    runtime = stages()[-1]
    config = load_config(ROOT / "docker" / "ferret.toml")
    exposed = {int(p) for rest in args_of(runtime, "EXPOSE") for p in rest.split()}
    assert exposed == {config.server.port, config.server.metrics_port}
    assert config.server.host == "0.0.0.0"
    copied = [c.split() for c in args_of(runtime, "COPY") if c.startswith("docker/ferret.toml")]
    assert copied and copied[0][1] in args_of(runtime, "CMD")[0]
    assert any(config.server.data_dir in v and "/models" in v for v in args_of(runtime, "VOLUME"))


def test_runs_as_a_non_root_user_after_the_last_root_step():
    runtime = stages()[-1]
    users = [i for i, (k, _) in enumerate(runtime) if k == "USER"]
    assert users, "the runtime stage sets USER"
    user = runtime[users[-1]][1]
    assert user not in ("root", "0") and not user.startswith(("root:", "0:"))
    last_run = max(i for i, (k, _) in enumerate(runtime) if k == "RUN")
    assert users[-1] > last_run


def test_healthcheck_uses_the_grpc_health_service_on_the_served_port(ferret_server):
    runtime = stages()[-1]
    (check,) = args_of(runtime, "HEALTHCHECK")
    command = shlex.split(check[check.index("CMD") + 3 :].strip().strip("[]").replace(",", " "))
    assert command[:2] == ["ferret", "health"]
    port = load_config(ROOT / "docker" / "ferret.toml").server.port
    assert command[command.index("--address") + 1] == f"127.0.0.1:{port}"
    # The same command against a live server, and against a port where nothing listens.
    assert main(["health", "--address", ferret_server.address]) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert main(["health", "--address", f"127.0.0.1:{free}", "--timeout", "1"]) == 1
