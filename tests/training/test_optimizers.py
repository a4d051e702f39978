"""``training.optimizer``'s names and packages (fairspec.training.optimizers), read from the
installed transformers' source (torch is not imported), and the preflight that stops a run whose optimizer's
package does not import before any stage starts."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from katan_runs import committee, compile_run, spec_text

from fairspec.run.preflight import check
from fairspec.training.optimizers import known_optimizers, optimizer_package


def test_the_bitsandbytes_optimizers_are_those_transformers_builds_with_bitsandbytes():
    from transformers.trainer_optimizer import _BITSANDBYTES_OPTIMIZERS

    bnb = {name for name in known_optimizers()
           if (package := optimizer_package(name)) and package.module == "bitsandbytes"}
    assert bnb == {str(member.value) for member in _BITSANDBYTES_OPTIMIZERS}
    assert {"adamw_8bit", "paged_adamw_32bit", "paged_adamw_8bit"} <= bnb
    for plain in ("adamw_torch", "adamw_torch_fused", "adafactor", "sgd"):
        assert plain in known_optimizers() and optimizer_package(plain) is None


def test_reading_the_names_does_not_import_torch():
    """validate reads them: finding transformers' modules loads its lazy package, not torch."""
    import subprocess

    code = ("import sys; from fairspec.training.optimizers import known_optimizers, "
            "optimizer_package; assert optimizer_package('paged_adamw_8bit'); "
            "assert known_optimizers(); print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("optimizer", ["paged_adamw_32bit", "adamw_torch_fused"])
def test_preflight_checks_the_optimizers_package_imports(tmp_path, optimizer):
    made = compile_run(spec_text(committee("http://127.0.0.1:9/v1"),
                                 training=f"{{optimizer: {optimizer}}}"), tmp_path)
    problems = [p for p in check(made.plan, [made.run], ("train",)) if "optimizer" in p]
    missing = optimizer_package(optimizer) is not None and \
        importlib.util.find_spec("bitsandbytes") is None
    assert problems == ([f"training.optimizer: {optimizer} needs bitsandbytes, which does not "
                         "import here: pip install 'fairspec[bnb]' (or optimizer: adamw_torch)"]
                        if missing else [])
