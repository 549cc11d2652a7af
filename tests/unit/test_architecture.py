"""House rule 1: Telegram stops at handlers/ (and the composition root), SQL at storage/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: module prefix -> which top-level packages it may not import, with the allowed exceptions.
RULES: list[tuple[str, frozenset[str], frozenset[str]]] = [
    # (forbidden import, files allowed to import it)
    # bot/double/ is the Bot API double (Telegram's side, shipped for `siaga112 demo`): it drives
    # a PTB Application the way Telegram does, so it may import telegram; the core may not
    # import it (CORE_MUST_NOT_IMPORT) and neither may handlers/ or storage/.
    ("telegram", frozenset({"handlers/", "bot/app.py", "bot/double/"}), frozenset()),
    ("sqlalchemy", frozenset({"storage/"}), frozenset()),
    ("alembic", frozenset({"storage/"}), frozenset()),
]
CORE_MUST_NOT_IMPORT = ("handlers", "storage", "bot.app", "bot.double", "telegram", "sqlalchemy")


def imported_modules(source: str) -> set[str]:
    """Every module a Python source imports (absolute imports, any depth of nesting)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def violations(files: dict[str, str]) -> list[str]:
    """The broken rules of a tree given as ``relative path -> source``."""
    found: list[str] = []
    for path, source in sorted(files.items()):
        modules = imported_modules(source)
        for forbidden, allowed, _ in RULES:
            if any(path.startswith(prefix) or path == prefix for prefix in allowed):
                continue
            for module in modules:
                if module == forbidden or module.startswith(forbidden + "."):
                    found.append(f"{path} imports {module}")
        if path.startswith(("handlers/", "storage/")):
            found.extend(
                f"{path} imports {module}"
                for module in modules
                if module == "bot.double" or module.startswith("bot.double.")
            )
        if path.startswith(("bot/domain/", "bot/services/")):
            for module in modules:
                if any(module == m or module.startswith(m + ".") for m in CORE_MUST_NOT_IMPORT):
                    found.append(f"{path} (core) imports {module}")
    return found


def project_files() -> dict[str, str]:
    files = {}
    for package in ("bot", "handlers", "storage"):
        for path in (ROOT / package).rglob("*.py"):
            files[path.relative_to(ROOT).as_posix()] = path.read_text(encoding="utf-8")
    return files


def test_layers_are_respected_when_the_project_is_scanned() -> None:
    files = project_files()
    assert len(files) > 20  # the scan really saw the packages
    assert violations(files) == []


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("bot/services/intake.py", "from telegram import Update\n"),
        ("bot/domain/model.py", "import sqlalchemy.orm\n"),
        ("storage/models.py", "def f():\n    import telegram.ext\n"),
        ("handlers/views.py", "from sqlalchemy import select\n"),
        ("bot/services/outbox.py", "from storage.uow import SqlUnitOfWork\n"),
        ("bot/geo/gazetteer.py", "from alembic import op\n"),
        ("bot/services/intake.py", "from bot.double.updates import TEST_TOKEN\n"),
        ("handlers/views.py", "from bot.double.simulated import SimUser\n"),
        ("bot/geo/gazetteer.py", "from telegram import Bot\n"),
    ],
)
def test_checker_reports_a_violation_when_a_layer_imports_what_it_must_not(
    path: str, source: str
) -> None:
    assert violations({path: source})
