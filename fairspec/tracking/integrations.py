"""The names ``training.report_to`` accepts: the installed transformers' own integrations.

Read from transformers' source without importing it (importing it loads torch, seconds that
``fairspec validate`` should not spend); whether each one's package is installed is asked of
transformers itself, once a run is about to start.
"""

from __future__ import annotations

import ast
import importlib.util
from functools import cache

_MODULE = "transformers.integrations.integration_utils"
_TABLE = "INTEGRATION_TO_CALLBACK"


@cache
def known_integrations() -> tuple[str, ...]:
    """The integration names the installed transformers' Trainer accepts in ``report_to``."""
    spec = importlib.util.find_spec(_MODULE)
    if spec is None or spec.origin is None:
        return ()
    tree = ast.parse(open(spec.origin, encoding="utf-8").read())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                and any(isinstance(t, ast.Name) and t.id == _TABLE for t in node.targets)):
            return tuple(sorted(k.value for k in node.value.keys
                                if isinstance(k, ast.Constant) and isinstance(k.value, str)))
    from transformers.integrations import integration_utils  # the table moved: ask it

    return tuple(sorted(getattr(integration_utils, _TABLE)))


def installed_integrations() -> list[str]:
    """The integrations whose packages are installed here (transformers' own test)."""
    from transformers.integrations.integration_utils import get_available_reporting_integrations

    return list(get_available_reporting_integrations())
