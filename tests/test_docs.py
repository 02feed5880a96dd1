"""The README and docs show only what exists: every ``mlip.x.y`` they name resolves, every Python snippet runs,
every YAML config snippet validates, and every command line they show parses with the real parsers."""

import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_NAME = re.compile(r"(?<![\w/.])mlip(?:\.[A-Za-z_]\w*)+")


def _blocks(kind: str) -> list[tuple[str, str]]:
    return [(f"{p.name}#{i}", code) for p in DOCS for i, (lang, code) in enumerate(_BLOCK.findall(p.read_text()))
            if lang == kind]  # fmt: skip


def _resolve(name: str):
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(name)


NAMES = sorted({n for p in DOCS for n in _NAME.findall(p.read_text())})


def test_the_docs_name_public_api():
    assert "mlip.data.read_mptrj" in NAMES  # the README's streaming MPtrj reader (it was not exported)
    assert len(NAMES) >= 10


@pytest.mark.parametrize("name", NAMES)
def test_every_name_the_docs_show_exists(name):
    _resolve(name)


def test_the_readme_mptrj_call_works(shared_data):
    from mlip.data import read_mptrj

    atoms = next(
        iter(read_mptrj(shared_data / "mptrj_sample" / "orb_mptrj_reconstructed.json", energy="corrected"))
    )
    assert "mp_id" in atoms.info


QUICK = "python train.py --run-dir runs/mine train.max_epochs=2 data.emt_frames=24 data.emt_test_frames=4"
"""The command the pages name for the ``runs/mine/model.pt`` their examples use (issue 33: no planted model)."""
EXPORT = "mlip-export runs/mine/model.pt model.pt2"


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory, worker_id) -> Path:
    """``runs/mine`` as the pages' named command makes it, run as a reader would: ``python train.py`` from an
    empty directory (once for all pytest-xdist workers, under a file lock)."""
    import subprocess
    import sys

    from filelock import FileLock

    shared = (
        tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    )
    root = shared / "docs-quick-run"
    with FileLock(str(shared / "docs-quick-run.lock")):
        if not (root / "runs" / "mine" / "model.pt").is_file():
            root.mkdir(exist_ok=True)
            done = subprocess.run([sys.executable, str(ROOT / "train.py"), *shlex.split(QUICK)[2:]], cwd=root,
                                  capture_output=True, text=True, timeout=900)  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
    return root / "runs" / "mine"


def _page(where: str) -> str:
    name = where.split("#")[0]
    return next(p for p in DOCS if p.name == name).read_text()


PYTHON = _blocks("python")


@pytest.mark.parametrize(("where", "code"), PYTHON, ids=[w for w, _ in PYTHON])
def test_every_python_snippet_runs(where, code, tmp_path, monkeypatch, request):
    """Each snippet runs in an empty directory holding only what its page makes or names a command for: the page
    must show the command that makes ``runs/mine/model.pt`` (and ``model.pt2``) before a snippet may read it."""
    import shutil

    page = _page(where)
    monkeypatch.chdir(tmp_path)
    if "runs/mine" in code or "model.pt2" in code:
        assert QUICK in page, f"{where} reads runs/mine/model.pt but its page does not name {QUICK!r}"
        shutil.copytree(request.getfixturevalue("quick_run"), tmp_path / "runs" / "mine")
    if "model.pt2" in code:
        assert EXPORT in page, f"{where} reads model.pt2 but its page does not show {EXPORT!r}"
        from mlip.cli.export import main as export_main

        assert export_main(shlex.split(EXPORT)[1:]) == 0
    exec(compile(code, where, "exec"), {"__name__": "__docs__"})


YAML = _blocks("yaml")


@pytest.mark.parametrize(("where", "code"), YAML, ids=[w for w, _ in YAML])
def test_every_yaml_snippet_is_a_valid_config(where, code):
    from mlip.training.config import RunConfig

    raw = yaml.safe_load(code)
    RunConfig.from_dict(raw)


def _commands() -> list[tuple[str, list[str], bool]]:
    """Command lines that run mlip's programs: whole ones from the docs' bash blocks (usage synopses with ``[...]``
    or ``SRC...`` placeholders left out), and mentions in inline code, whose flags at least must exist."""
    found = []
    for p in DOCS:
        text = p.read_text()
        chunks = [(c, True) for lang, c in _BLOCK.findall(text) if lang == "bash"]
        chunks += [(c, False) for c in re.findall(r"`((?:mlip-\w+|python train\.py) [^`]+)`", text)]
        for chunk, whole in chunks:
            for line in chunk.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                if not re.search(r"(train\.py|^mlip-\w+)", line) or "[" in line or "..." in line:
                    continue
                argv = shlex.split(line)
                i = next(k for k, a in enumerate(argv) if a.endswith("train.py") or a.startswith("mlip-"))
                found.append((f"{p.name}: {line[:60]}", argv[i:], whole))
    return found


COMMANDS = _commands()


def _parser(prog: str):
    from mlip.cli.eval import _parse as eval_parse
    from mlip.cli.export import _parse as export_parse
    from mlip.cli.import_mace import _parse as import_mace_parse
    from mlip.cli.md import _parse as md_parse
    from mlip.cli.preprocess import parser as preprocess_parser
    from mlip.cli.relax import _parse as relax_parse
    from mlip.cli.train import parse_args

    if prog.endswith("train.py"):
        return parse_args
    return {
        "mlip-eval": eval_parse,
        "mlip-export": export_parse,
        "mlip-relax": relax_parse,
        "mlip-md": md_parse,
        "mlip-preprocess": preprocess_parser().parse_args,
        "mlip-import-mace": import_mace_parse,
    }[prog]


@pytest.mark.parametrize(("where", "argv", "whole"), COMMANDS, ids=[w for w, _, _ in COMMANDS])
def test_every_command_line_parses(where, argv, whole, capsys):
    from mlip.cli.train import apply_override

    prog, args = argv[0], argv[1:]
    parse = _parser(prog)
    if whole:
        parsed = parse(args)
        for item in getattr(parsed, "overrides", []):
            apply_override({}, item)
        return
    with pytest.raises(SystemExit):  # the flags of an inline mention must be among those --help lists
        parse(["--help"])
    shown = capsys.readouterr().out
    for flag in (a.split("=")[0] for a in args if a.startswith("--")):
        assert flag in shown, f"{where}: {flag} is not an option of {prog}"


def test_the_docs_show_commands():
    assert sum(whole for *_, whole in COMMANDS) >= 8
    assert len(PYTHON) >= 2


def _tutorial(title: str) -> dict:
    """The namespace of the docs' Python block that starts with ``# {title}``, executed."""
    found = [(where, code) for where, code in PYTHON if code.startswith(f"# {title}\n")]
    assert len(found) == 1, f"one block starting with '# {title}' expected, found {len(found)}"
    namespace = {"__name__": "__tutorial__"}
    exec(compile(found[0][1], found[0][0], "exec"), namespace)
    return namespace


from mlip.testing.suite import ModelPhysicsSuite  # noqa: E402


class TestTutorialBackbone(ModelPhysicsSuite):
    """docs/library.md's Tutorial 1: the ~40-line backbone passes the package's physics test kit."""

    def make_model(self, dtype):
        return _tutorial("Tutorial 1: a custom backbone")["gated_net"](dtype)
