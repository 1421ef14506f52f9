from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .widgets import widget_crd


@pytest.fixture
def widgets(install_crds: Callable[..., list[str]]) -> Any:
    """The Widget test CRD installed on the session server; returns a CustomObjectsApi helper."""
    install_crds(widget_crd())
    return True
