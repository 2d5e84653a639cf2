"""Run tests/runs/test_rowjson.py against a given build of ``gordon_manager._rowjson`` (an ASan/UBSan one).

    python tests/runs/asan_driver.py <path of the built .so>   (under LD_PRELOAD=libasan.so:libubsan.so)
"""

from __future__ import annotations

import importlib.util
import sys

import gordon_manager

spec = importlib.util.spec_from_file_location("gordon_manager._rowjson", sys.argv[1])
assert spec is not None and spec.loader is not None
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sys.modules["gordon_manager._rowjson"] = module
gordon_manager._rowjson = module  # type: ignore[attr-defined]

from gordon_manager import rowjson  # noqa: E402  (after the swap: it must take the instrumented build)

assert rowjson.rows is module.rows and rowjson.IMPLEMENTATION == "c"

import pytest  # noqa: E402

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:schemathesis", "tests/runs/test_rowjson.py"]))
