"""infra/Dockerfile, checked statically (no Docker engine here): stages, user, health check, inputs."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cfnlint.decode.cfn_yaml import loads as cfn_loads

from consumer.config import load_config

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "infra" / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [args for o, args in self.instructions if o == op]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages, continuation lines joined and comments dropped."""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    assert not buf, "dangling line continuation"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        op, _, rest = line.partition(" ")
        op = op.upper()
        rest = rest.strip()
        if op == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert m, line
            base = re.sub(r"\$\{(\w+)\}", lambda g: args[g.group(1)], m.group(1))
            stages.append(Stage(base, m.group(2)))
        elif not stages:
            assert op == "ARG", f"only ARG may precede FROM: {line}"
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append((op, rest))
    return args, stages


@pytest.fixture(scope="module")
def parsed() -> tuple[dict[str, str], list[Stage]]:
    return parse(DOCKERFILE.read_text())


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(x, str) for x in value), args
    return value


def test_multi_stage_with_pinned_bases(parsed: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = parsed
    assert len(stages) >= 2
    assert stages[0].name == "build" and stages[-1].name == "runtime"
    for s in stages:
        image, _, tag = s.base.partition(":")
        assert tag and tag != "latest", f"unpinned base image {s.base}"
        assert re.match(r"\d+\.\d+\.\d+-", tag), f"base tag {tag} names no exact version"
        assert image == "python" and tag.startswith("3.11.") and "bookworm" in tag


def test_build_stage_installs_official_kclpy_and_cfguard(parsed: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = parsed
    build = stages[0]
    runs = " ".join(build.all("RUN"))
    assert "python -m venv /opt/cfguard" in runs
    # The official sdist, its jars fetched by its own download_jars command before pip installs it.
    assert 'pip download --no-deps --no-binary=:all: "amazon-kclpy>=3.0"' in runs
    assert runs.index("setup.py download_jars") < runs.index("missing_jars()") < runs.index("pip install . ")
    assert build.all("ARG") == ["KCL_MVN_REPO_SEARCH_URL=https://repo1.maven.org/maven2/"]
    assert 'pip install ".[kcl]"' in runs
    assert "jars_dir()" in runs  # the build fails when the jars were not downloaded
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert [re.split(r"[<>=]", r)[0] for r in extras["kcl"]] == ["amazon-kclpy"]


def test_runtime_stage_jre_venv_and_non_root(parsed: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = parsed
    rt = stages[-1]
    runs = " ".join(rt.all("RUN"))
    assert "openjdk-17-jre-headless" in runs and "--no-install-recommends" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs
    assert "--from=build /opt/cfguard /opt/cfguard" in rt.all("COPY")
    [user] = rt.all("USER")
    uid = user.split(":")[0]
    assert uid not in ("root", "0") and int(uid) >= 1000
    assert "--uid " + uid in runs  # the user exists in the image
    assert "chown -R cfguard:cfguard /var/lib/cfguard" in runs  # status dir and spool are writable
    # pip/apt run before the switch to the unprivileged user, nothing runs as root after it.
    ops = [op for op, _ in rt.instructions]
    assert all(op != "RUN" for op in ops[ops.index("USER") :])


def test_health_check_and_entrypoint_use_the_baked_config(parsed: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = parsed
    rt = stages[-1]
    [hc] = rt.all("HEALTHCHECK")
    opts, _, cmd = hc.partition("CMD")
    assert "--start-period=" in opts
    health = exec_form(cmd.strip())
    [entry] = rt.all("ENTRYPOINT")
    run = exec_form(entry)
    assert run[:2] == ["cfguard", "run"] and health[:2] == ["cfguard", "health"]
    config = run[run.index("--config") + 1]
    assert health[health.index("--config") + 1] == config
    assert f"infra/cfguard.yaml {config}" in rt.all("COPY")
    assert load_config(REPO / "infra" / "cfguard.yaml", environ={}).kcl.status_dir is not None
    # The ECS task definition runs the same health check.
    tpl = cfn_loads((REPO / "infra" / "template.yaml").read_text(), "template")
    [c] = tpl["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert c["HealthCheck"]["Command"] == ["CMD", *health]


def test_no_remote_add_and_no_secrets(parsed: tuple[dict[str, str], list[Stage]]) -> None:
    global_args, stages = parsed
    secret = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL)", re.IGNORECASE)
    for name in global_args:
        assert not secret.search(name), name
    for s in stages:
        assert not s.all("ADD"), "use COPY (ADD fetches URLs and unpacks archives)"
        for env in s.all("ENV") + s.all("ARG"):
            for token in shlex.split(env):
                name = token.split("=", 1)[0]
                assert not secret.search(name), f"{name} looks like a secret baked into the image"
        for run in s.all("RUN"):
            assert not re.search(r"(curl|wget)\s", run), (
                "remote downloads only through pip (Maven for the jars)"
            )


def _ignored(path: str, patterns: list[str]) -> bool:
    hit = False
    for p in patterns:
        neg = p.startswith("!")
        pat = p[1:] if neg else p
        pat = pat.removeprefix("**/")
        parts = path.split("/")
        if any(
            fnmatch.fnmatch("/".join(parts[i:]), pat) or fnmatch.fnmatch(parts[i], pat)
            for i in range(len(parts))
        ):
            hit = not neg
    return hit


def test_copied_sources_exist_and_are_not_docker_ignored(parsed: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = parsed
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for must in (".venv", ".git", "tests", "cfguard-quarantine.jsonl", ".env"):
        assert _ignored(must, patterns), f".dockerignore lets {must} into the build context"
    copied = 0
    for s in stages:
        for args in s.all("COPY"):
            if args.startswith("--from="):
                continue
            *sources, _dest = args.split()
            for src in sources:
                assert (REPO / src).exists(), src
                assert not _ignored(src, patterns), f"{src} is copied but .dockerignore excludes it"
                copied += 1
    assert copied >= 5
