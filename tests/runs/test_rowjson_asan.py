"""The C extension under AddressSanitizer and UndefinedBehaviorSanitizer: it is built instrumented, and the
whole of tests/runs/test_rowjson.py (property tests included) runs against that build; any out-of-bounds
read or write, use after free or signed overflow aborts the run."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.infra.binaries import require_binary

ROOT = Path(__file__).resolve().parents[2]


def test_rowjson_is_clean_under_asan_and_ubsan(tmp_path: Path):
    gcc = require_binary("gcc", package="gcc")
    library = tmp_path / f"_rowjson{sysconfig.get_config_var('EXT_SUFFIX')}"
    build = subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
         "-fno-omit-frame-pointer", f"-I{sysconfig.get_paths()['include']}",
         str(ROOT / "src" / "gordon_manager" / "_rowjson.c"), "-o", str(library)],
        capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    runtime = [subprocess.run([gcc, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
               for name in ("libasan.so", "libubsan.so")]
    env = {**os.environ, "LD_PRELOAD": ":".join(runtime), "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "runs" / "asan_driver.py"), str(library)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
