"""The one ``snn-energy`` command: internal errors (bugs) against user errors, Ctrl-C, output paths checked before
any work, progress bars on terminals only, and ESDNet's commands living in ``esdnet`` without ``snn_energy``."""
import io
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import esdnet.cli.data
import esdnet.synth
import esdnet.cli.evaluate
from esdnet.interrupt import DeferredInterrupt
from esdnet.progress import progress_bar
from snn_energy.cli import main
from snn_energy.errors import ModelInputError

REPO_ROOT = Path(__file__).resolve().parents[1]


def synth_args(out: Path) -> list[str]:
    return ["data", "synth", "--out", str(out), "--train", "1", "--test", "1", "--size", "16"]


def failing(exception: BaseException):
    def fail(*args, **kwargs):
        raise exception
    return fail


# --- bugs, user errors, interrupts ---------------------------------------------------------------------------

def test_a_bug_is_one_line_naming_the_log_with_the_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(esdnet.cli.data, "synthesize_dataset", failing(KeyError("lost key")))
    logs = tmp_path / "logs"
    logs.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(logs))
    assert main(synth_args(tmp_path / "out")) == 1
    err = capsys.readouterr().err
    [log] = list(logs.iterdir())
    assert err == (f"snn-energy data synth: internal error (a bug in snn-energy): KeyError: 'lost key'; traceback "
                   f"written to {log}\n")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "KeyError: 'lost key'" in text and "def fail" not in err
    assert "in fail" in text  # the frame that raised


def test_debug_prints_the_traceback_instead(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(esdnet.cli.data, "synthesize_dataset", failing(RuntimeError("hook failed")))
    logs = tmp_path / "logs"
    logs.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(logs))
    assert main(["--debug", *synth_args(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)") and "in fail" in err
    assert err.endswith("snn-energy data synth: internal error (a bug in snn-energy): RuntimeError: hook failed\n")
    assert not list(logs.iterdir())


@pytest.mark.parametrize("exception", [ValueError("bad value"), FileNotFoundError("x.png: missing"),
                                       ModelInputError("takes rank-5 tensors")])
def test_user_errors_stay_one_line_with_status_2(tmp_path, monkeypatch, capsys, exception):
    monkeypatch.setattr(esdnet.cli.data, "synthesize_dataset", failing(exception))
    assert main(synth_args(tmp_path / "out")) == 2
    assert capsys.readouterr().err == f"snn-energy data synth: error: {exception}\n"


def test_ctrl_c_is_one_line_and_status_130(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(esdnet.cli.data, "synthesize_dataset", failing(KeyboardInterrupt()))
    assert main(synth_args(tmp_path / "out")) == 130
    assert capsys.readouterr().err == "snn-energy data synth: interrupted\n"


# --- output paths, checked before any work -------------------------------------------------------------------

@pytest.fixture
def blocker(tmp_path) -> Path:
    """A file where a folder is wanted."""
    path = tmp_path / "taken"
    path.write_text("a file")
    return path


def assert_refused_in_words(capsys, command: str, option: str, path: Path, blocker: Path) -> None:
    captured = capsys.readouterr()
    assert captured.err == (f"snn-energy {command}: error: {option} {path}: cannot be created, {blocker} is a "
                            "file, not a folder\n")
    assert captured.out == "" and "Errno" not in captured.err


def test_data_synth_out_below_a_file(blocker, capsys):
    assert main(synth_args(blocker / "sub")) == 2
    assert_refused_in_words(capsys, "data synth", "--out", blocker / "sub", blocker)


def test_profile_out_below_a_file(blocker, capsys):
    assert main(["profile", "--out", str(blocker / "report")]) == 2
    assert_refused_in_words(capsys, "profile", "--out", blocker / "report", blocker)


def test_compare_out_below_a_file(blocker, capsys):
    assert main(["compare", "--out", str(blocker / "report")]) == 2
    assert_refused_in_words(capsys, "compare", "--out", blocker / "report", blocker)


def test_evaluate_checks_out_before_scoring(tmp_path, blocker, monkeypatch, capsys):
    monkeypatch.setattr(esdnet.cli.evaluate, "pair_files", failing(AssertionError("scored before the check")))
    assert main(["evaluate", "--pred", str(tmp_path), "--target", str(tmp_path), "--out", str(blocker)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"snn-energy evaluate: error: --out {blocker}: is a file, not a folder\n"
    assert captured.out == ""


def test_train_out_that_is_a_file(tmp_path, blocker, capsys):
    assert main(["train", "--data", str(tmp_path), "--out", str(blocker), "--no-progress"]) == 2
    assert capsys.readouterr().err == f"snn-energy train: error: --out {blocker}: is a file, not a folder\n"
    assert blocker.read_text() == "a file"


# --- progress bars -------------------------------------------------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_show_on_a_terminal_only(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    quiet = progress_bar(range(3), desc="work")
    assert quiet.disable and list(quiet) == [0, 1, 2]
    assert sys.stderr.getvalue() == ""
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert list(progress_bar(range(3), desc="work")) == [0, 1, 2]
    assert "work: 100%" in terminal.getvalue() and "3/3" in terminal.getvalue()
    assert progress_bar(range(3), enabled=False).disable


def test_evaluate_shows_a_bar_on_a_terminal(tmp_path, monkeypatch, capsys):
    data = esdnet.synth.synthesize_dataset(tmp_path / "d", n_train=1, n_test=2, size=32)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    target = data / "test" / "target"
    assert main(["evaluate", "--pred", str(target), "--target", str(target), "--out", str(tmp_path / "m")]) == 0
    assert "evaluate: 100%" in terminal.getvalue() and "2/2" in terminal.getvalue()


# --- each package owns its commands -------------------------------------------------------------------------

def test_esdnet_commands_do_not_import_snn_energy():
    code = ("import sys, argparse, esdnet.cli.derain, esdnet.cli.evaluate, esdnet.cli.data, esdnet.cli.train\n"
            "parser = argparse.ArgumentParser(); sub = parser.add_subparsers()\n"
            "for m in (esdnet.cli.derain, esdnet.cli.evaluate, esdnet.cli.data, esdnet.cli.train): m.add_parser(sub)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'snn_energy'))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_python_m_snn_energy_cli_lists_every_command():
    done = subprocess.run([sys.executable, "-m", "snn_energy.cli", "--help"], cwd=REPO_ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    for command in ("profile", "compare", "derain", "evaluate", "data", "train", "--debug"):
        assert command in done.stdout


# --- Ctrl-C deferred to a safe point (train) ----------------------------------------------------------------

def test_deferred_interrupt_waits_once_then_stops_and_leaves_an_ignored_sigint_alone():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with DeferredInterrupt() as interrupt:
            signal.raise_signal(signal.SIGINT)
            assert interrupt.requested  # the first Ctrl-C only asks
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)  # the second stops at once
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with DeferredInterrupt() as interrupt:
            signal.raise_signal(signal.SIGINT)
            assert not interrupt.requested and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
