"""Settings every test shares."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def english_by_default() -> Iterator[None]:
    """Tests read English unless they ask for a language: a Japanese locale on the machine must not change that."""
    before = os.environ.get("CHAINRULE_LANG")
    os.environ["CHAINRULE_LANG"] = "en"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CHAINRULE_LANG", None)
        else:
            os.environ["CHAINRULE_LANG"] = before


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep decoded copies and downloads out of the user's cache, for every test and its subprocesses."""
    before = os.environ.get("CHAINRULE_CACHE_DIR")
    os.environ["CHAINRULE_CACHE_DIR"] = str(tmp_path_factory.mktemp("chainrule-cache"))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CHAINRULE_CACHE_DIR", None)
        else:
            os.environ["CHAINRULE_CACHE_DIR"] = before
