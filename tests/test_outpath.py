"""-o/--output PATH: a regular file is replaced whole, anything else is written in place
(never replaced), a directory is refused; for every command with an -o."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import subprocess_env
from tokencli.errors import UsageError
from tokencli.outpath import open_output, plan_output, write_output

# Every command that writes to -o PATH, as the arguments that make it write something.
OUTPUT_COMMANDS = {
    "ledger export": ["ledger", "export"],
    "ledger export csv": ["ledger", "export", "--format", "csv"],
    "ledger export prometheus": ["ledger", "export", "--format", "prometheus"],
    "report": ["report"],
    "report csv": ["report", "--format", "csv"],
    "prompt export": ["prompt", "export"],
}


def _seed(cli) -> None:
    assert cli("run", "-m", "mock:echo", "hello there").exit_code == 0
    assert cli("prompt", "save", "greet", "Hi {{name}}").exit_code == 0


def _read_fifo(path: Path) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []

    def reader() -> None:
        with open(path, "rb") as fh:
            got.append(fh.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    return thread, got


@pytest.mark.parametrize("name", OUTPUT_COMMANDS)
def test_a_fifo_is_written_in_place_by_every_command(tmp_path, cli, name):
    _seed(cli)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    thread, got = _read_fifo(fifo)
    result = cli(*OUTPUT_COMMANDS[name], "-o", str(fifo))
    thread.join(timeout=10)
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the FIFO, not a file put in its place
    assert got and got[0]  # and its reader got the output
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("name", OUTPUT_COMMANDS)
def test_a_symlink_is_kept_and_its_target_written(tmp_path, cli, name):
    _seed(cli)
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "out.txt"
    target.write_text("old contents\n")
    os.chmod(target, 0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    result = cli(*OUTPUT_COMMANDS[name], "-o", str(link))
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    text = target.read_text()
    assert text and "old contents" not in text
    if name.startswith("ledger export") and "prometheus" not in name:
        assert stat.S_IMODE(target.stat().st_mode) == 0o600  # backups stay owner-only
    elif "prometheus" not in name:
        assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the file's own bits kept
    assert sorted(p.name for p in real_dir.iterdir()) == ["out.txt"]  # no temporary file left


@pytest.mark.parametrize("name", OUTPUT_COMMANDS)
def test_a_directory_is_one_sentence_and_exit_2(tmp_path, cli, name):
    _seed(cli)
    folder = tmp_path / "folder"
    folder.mkdir()
    if name == "prompt export":  # a directory is prompt export's way of asking for one file each
        pytest.skip("prompt export writes one file per prompt into a directory")
    result = cli(*OUTPUT_COMMANDS[name], "-o", str(folder))
    assert result.exit_code == 2
    assert "is a directory" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert folder.is_dir() and not list(folder.iterdir())


def test_a_regular_file_is_replaced_atomically(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    before = os.stat(path).st_ino
    with pytest.raises(RuntimeError), open_output(path) as fh:
        fh.write(b"half")
        raise RuntimeError("stop")
    assert path.read_text() == "old"  # a failure leaves the old file whole
    write_output(path, "new")
    assert path.read_text() == "new" and os.stat(path).st_ino != before
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "made.txt")
    write_output(link, "x")
    assert link.is_symlink() and (tmp_path / "made.txt").read_text() == "x"


def test_stdout_itself_is_written_through_its_descriptor(tmp_path):
    log = tmp_path / "log"
    log.write_text("first\n")
    script = (
        "from tokencli.outpath import write_output, plan_output; from pathlib import Path;"
        "assert plan_output(Path('/dev/stdout')).how == 'fd';"
        "write_output('/dev/stdout', 'second\\n')"
    )
    with open(log, "a") as out:
        proc = subprocess.run(
            [sys.executable, "-c", script], stdout=out, stderr=subprocess.PIPE, text=True
        )
    assert proc.returncode == 0, proc.stderr
    assert log.read_text() == "first\nsecond\n"  # appended, as the shell's >> asked


def test_plans_by_kind(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert plan_output(fifo).how == "in_place"
    assert plan_output(tmp_path / "new").how == "atomic"
    (tmp_path / "file").write_text("")
    assert plan_output(tmp_path / "file").how == "atomic"
    assert plan_output(tmp_path / "file", append=True).how == "in_place"
    with pytest.raises(UsageError, match="is a directory"):
        plan_output(tmp_path)


def _device(tmp_path: Path, name: str, minor: int) -> Path:
    """A character device like /dev/null (minor 3) or /dev/full (7) inside tmp_path:
    the tests never aim at the system's own, which a regression would replace."""
    path = tmp_path / name
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
        os.close(os.open(path, os.O_WRONLY))
    except (PermissionError, OSError):
        pytest.skip("cannot make device nodes here (needs root)")
    return path


def test_a_device_node_is_written_in_place_and_stays_a_device(tmp_path, cli):
    _seed(cli)
    null = _device(tmp_path, "null", 3)
    for args in OUTPUT_COMMANDS.values():
        result = cli(*args, "-o", str(null))
        assert result.exit_code == 0, result.stderr
        assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "null"]


def test_a_full_device_is_one_sentence_and_exit_2(tmp_path, tokencli_exe, home):
    full = _device(tmp_path, "full", 7)
    env = subprocess_env(home)
    subprocess.run([*tokencli_exe, "run", "-m", "mock:echo", "hi"], env=env, capture_output=True)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\n")
    for args in (
        ["ledger", "export"],
        ["report"],
        ["report", "--format", "csv"],
        ["batch", str(prompts), "-m", "mock:echo"],
    ):
        proc = subprocess.run(
            [*tokencli_exe, *args, "-o", str(full)], env=env, capture_output=True, text=True
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr == (
            f"tokencli: Cannot write {full}: No space left on device. Check the --output path.\n"
        )
        assert stat.S_ISCHR(os.lstat(full).st_mode)


def test_batch_output_into_a_fifo_and_refusing_a_directory(tmp_path, cli):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\n")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    thread, got = _read_fifo(fifo)
    result = cli("batch", str(prompts), "-m", "mock:echo", "-o", str(fifo))
    thread.join(timeout=10)
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [json.loads(line)["status"] for line in got[0].decode().splitlines()] == ["ok", "ok"]
    result = cli("batch", str(prompts), "-m", "mock:echo", "-o", str(tmp_path))
    assert result.exit_code == 2 and "is a directory" in result.stderr


def test_config_init_force_keeps_a_symlinked_config(tmp_path, cli, home):
    real = tmp_path / "dotfiles" / "tokencli.toml"
    real.parent.mkdir()
    real.write_text("# mine\n")
    os.chmod(real, 0o640)
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").symlink_to(real)
    result = cli("config", "init", "--force")
    assert result.exit_code == 0, result.stderr
    assert (home / "config.toml").is_symlink()
    from importlib.resources import files

    assert real.read_text() == files("tokencli").joinpath("data/sample-config.toml").read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
