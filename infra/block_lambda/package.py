"""Build the block Lambda's deployment zip: ``block_lambda/`` plus the shared event model.

    python infra/block_lambda/package.py dist/block-lambda.zip [--deps DIR]

``--deps DIR`` adds a directory of installed dependencies (pydantic and pydantic-core for the
Lambda's platform, e.g. ``pip install --platform manylinux2014_x86_64 --only-binary=:all:
--target DIR 'pydantic>=2.6'``); boto3 is in the Python runtime. Handler:
``block_lambda.handler.handler``.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = ("actions/__init__.py", "actions/payload.py")


def build(out: Path, deps: Path | None = None) -> list[str]:
    out.parent.mkdir(parents=True, exist_ok=True)
    names = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for src in sorted(HERE.glob("*.py")):
            if src.name != "package.py":
                names.append(f"block_lambda/{src.name}")
                z.write(src, names[-1])
        for rel in SHARED:
            names.append(rel)
            z.write(REPO / rel, rel)
        if deps is not None:
            for src in sorted(p for p in deps.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
                rel = src.relative_to(deps).as_posix()
                names.append(rel)
                z.write(src, rel)
    return names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--deps", type=Path, help="directory of installed dependencies to include")
    a = p.parse_args(argv)
    names = build(a.out, a.deps)
    print(f"{a.out}: {len(names)} files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
