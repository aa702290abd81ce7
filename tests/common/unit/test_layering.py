"""Domain packages hold pure policy: no I/O, no framework. This is the import contract, checked on the AST."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
FORBIDDEN = {"faststream", "pymongo", "redis", "httpx", "fastapi", "starlette", "structlog", "aiokafka",
             "aioboto3", "boto3", "botocore", "motor", "uvicorn", "requests"}
DOMAIN_FILES = sorted(REPO.glob("services/*/parley_*/domain/**/*.py"))


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_domain_modules_import_no_io_or_framework(path: Path) -> None:
    assert not imported_roots(path) & FORBIDDEN


def test_the_contract_catches_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from pymongo import AsyncMongoClient\nimport structlog.stdlib\n")
    assert imported_roots(module) & FORBIDDEN == {"pymongo", "structlog"}
