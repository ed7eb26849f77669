"""Settings every test shares."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``name=value`` in this process's environment (and so its subprocesses') inside the block."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@pytest.fixture(scope="session", autouse=True)
def english_by_default() -> Iterator[None]:
    """Tests read English unless they ask for a language: a Japanese locale on the machine must not change that."""
    from chainrule.codegen import i18n

    with _environment("CHAINRULE_LANG", "en"), i18n.language("en"):
        yield


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep decoded copies and downloads out of the user's cache, for every test and its subprocesses."""
    with _environment("CHAINRULE_CACHE_DIR", str(tmp_path_factory.mktemp("chainrule-cache"))):
        yield


@pytest.fixture(scope="session", autouse=True)
def private_outputs_list(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the list of files chainrule wrote (outputs.json in the platform's cache folder) out of the user's."""
    with _environment("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache"))):
        yield
