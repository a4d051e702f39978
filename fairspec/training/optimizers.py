"""The names ``training.optimizer`` accepts (the installed transformers' ``OptimizerNames``) and
the package each one needs beyond torch.

Read from transformers' source without importing it (importing it loads torch, seconds that
``fairspec validate`` should not spend), as ``fairspec.tracking`` reads the trackers; whether
a needed package imports is checked by ``fairspec run``'s preflight.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from functools import cache

_NAMES_MODULE = "transformers.training_args"
_NAMES_CLASS = "OptimizerNames"
_HANDLERS_MODULE = "transformers.trainer_optimizer"


@dataclass(frozen=True)
class OptimizerPackage:
    """What an optimizer family imports, and how to install it."""

    module: str
    install: str


#: transformers' optimizer families (its ``_<FAMILY>_OPTIMIZERS`` lists) and their packages.
FAMILY_PACKAGES: dict[str, OptimizerPackage] = {
    "_BITSANDBYTES_OPTIMIZERS": OptimizerPackage("bitsandbytes", "pip install 'fairspec[bnb]'"),
    "_GALORE_OPTIMIZERS": OptimizerPackage("galore_torch", "pip install galore-torch"),
    "_APOLLO_OPTIMIZERS": OptimizerPackage("apollo_torch", "pip install apollo-torch"),
    "_TORCHAO_OPTIMIZERS": OptimizerPackage("torchao", "pip install torchao"),
    "_SCHEDULE_FREE_OPTIMIZERS": OptimizerPackage("schedulefree", "pip install schedulefree"),
}
#: Single optimizers with a package of their own.
SINGLE_PACKAGES: dict[str, OptimizerPackage] = {
    "grokadamw": OptimizerPackage("grokadamw", "pip install grokadamw"),
    "lomo": OptimizerPackage("lomo_optim", "pip install lomo-optim"),
    "adalomo": OptimizerPackage("lomo_optim", "pip install lomo-optim"),
    "stable_adamw": OptimizerPackage("optimi", "pip install torch-optimi"),
    "adamw_anyprecision": OptimizerPackage("torchdistx", "pip install torchdistx"),
}


def _module_tree(module: str) -> ast.Module | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    with open(spec.origin, encoding="utf-8") as source:
        return ast.parse(source.read())


@cache
def _members() -> dict[str, str]:
    """``OptimizerNames``' members: attribute name -> the optim string."""
    tree = _module_tree(_NAMES_MODULE)
    for node in tree.body if tree is not None else ():
        if isinstance(node, ast.ClassDef) and node.name == _NAMES_CLASS:
            return {target.id: stmt.value.value for stmt in node.body
                    if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)
                    for target in stmt.targets if isinstance(target, ast.Name)}
    if tree is None:
        return {}
    from transformers.training_args import OptimizerNames  # the class moved: ask it

    return {member.name: member.value for member in OptimizerNames}


def known_optimizers() -> tuple[str, ...]:
    """The optimizer names the installed transformers' Trainer accepts as ``optim``."""
    return tuple(sorted(_members().values()))


@cache
def _families() -> dict[str, OptimizerPackage]:
    """optim string -> its family's package, from transformers' ``_<FAMILY>_OPTIMIZERS``."""
    members, out = _members(), {}
    tree = _module_tree(_HANDLERS_MODULE)
    for node in tree.body if tree is not None else ():
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.List)):
            continue
        for target in node.targets:
            package = FAMILY_PACKAGES.get(target.id) if isinstance(target, ast.Name) else None
            for item in node.value.elts if package else ():
                if isinstance(item, ast.Attribute) and item.attr in members:
                    out[members[item.attr]] = package
    return out


def optimizer_package(name: str) -> OptimizerPackage | None:
    """The package ``name`` needs beyond torch and transformers, or None."""
    return _families().get(name) or SINGLE_PACKAGES.get(name)
