"""The ``soi-mlflow`` command: fast help, the data preview, config files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "soi_mlflow.cli", *args], capture_output=True, text=True
    )


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from soi_mlflow.cli import main\n"
        "main(['--help'])\n"
        "names = ('torch', 'lightning', 'mlflow', 'datasets', 'transformers')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "preview" in _run("--help").stdout
    out = _run("train", "--help")
    assert "--capture {train_pass,eval_pass}" in out.stdout and "--tracking-uri" in out.stdout


def test_preview_of_the_default_builtin_mixture() -> None:
    out = _run("preview", "--max-examples", "40", "--examples", "1")
    assert out.returncode == 0, out.stderr
    assert "train on books, movies; OOD: restaurants" in out.stdout
    assert "restaurants        ood" in out.stdout
    assert "mislabeled=" in out.stdout
    assert re.search(r"label=(negative|positive) \[(clean|ambiguous|mislabeled)\]", out.stdout)
    # the members' profiles, one row per factor, under 100 columns
    profiles = out.stdout.split("member profiles")[1].splitlines()[1:]
    assert profiles[0].split() == ["books", "movies"]
    assert re.match(r"examples +40 +40$", profiles[1])
    assert re.match(r"classes +2 +2$", profiles[2])
    assert max(len(line) for line in profiles) < 100


def test_config_file_fills_in_and_flags_win(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("axis: lang\nmembers: [lang_a, lang_b]\nood: [lang_c]\nmax_examples: 30\n")
    out = _run("preview", "--config", str(cfg), "--examples", "0")
    assert out.returncode == 0, out.stderr
    assert "train on lang_a, lang_b; OOD: lang_c" in out.stdout
    assert "lang_a      train        30" in out.stdout
    out = _run("preview", "--config", str(cfg), "--members", "lang_b", "--examples", "0")
    assert "train on lang_b; OOD: lang_c" in out.stdout


def test_help_into_a_closed_pipe_prints_no_traceback() -> None:
    """`soi-mlflow --help | true`: the reader is gone before anything is written."""
    shell = f"{sys.executable} -m soi_mlflow.cli --help | true"
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in out.stderr and "BrokenPipeError" not in out.stderr, out.stderr


def test_the_script_exits_with_the_commands_code_and_its_objects_frozen() -> None:
    """``script()`` (the console script, ``python -m soi_mlflow.cli``) passes on main's
    exit code and freezes the garbage collector's objects for the exit (bench/cli_exit.py);
    ``main()`` called from Python leaves the collector alone."""
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
        "from soi_mlflow.cli.main import main, script\n"
        "main(['--version'])\n"
        "print('after main', gc.get_freeze_count())\n"
        "sys.argv = ['soi-mlflow', *sys.argv[1:]]\n"
        "script()\n"
    )
    for args, status in ((["--version"], 0), (["no-such-command"], 2)):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert out.returncode == status, out.stderr
        assert "after main 0" in out.stdout and out.stdout.rstrip().endswith("frozen True")
