"""The docs cannot drift from the code: their Python snippets run, their `rlsuite` command lines parse,
their relative links resolve, and they stay short and current.

Covered: README.md, benchmarks/README.md and every page under docs/ (the reports that `rlsuite report`
generates there are output, not docs, and are left out). A fenced ```python block runs: as a doctest
when it holds `>>>` prompts, else as a script. A ```bash (or unlabelled, or console) block is read
line by line: a line is a command when it starts with `rlsuite` (or `$ rlsuite`), or when `rlsuite`
follows `&&`, `||`, `;` or `|`; anything else (output, other tools) is skipped. Inline code spans that
start with `rlsuite ` are commands too. Each command is parsed by the real CLI without running it: its
subcommand's `--help` must succeed (through typer's CliRunner), click must accept the exact options, values and arguments (a code
span may leave out required arguments), and the agent names and env ids it uses must be registered.
A usage line (`[--option VALUE]`, `<placeholder>`) is checked for its subcommand and option names only.

A line, or the fenced block right after it, is left out by an HTML comment
`<!-- docs-test: skip REASON -->`; the reason is required.
"""

from __future__ import annotations

import doctest
import functools
import re
import runpy
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from typer.main import get_command
from typer.testing import CliRunner

import rlsuite.envs  # noqa: F401  (registers the rlsuite/ ids the docs use)
from rlsuite.agents.registry import AGENTS
from rlsuite.cli import app

try:
    import ale_py  # noqa: F401  (registers the ALE/ ids; the atari extra)
except ImportError:  # without it, Atari ids are not checked
    ale_py = None

ROOT = Path(__file__).resolve().parents[1]
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\b(?P<reason>[^>]*)-->")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[^`]*)$")
SHELL_INFOS = {"", "bash", "sh", "shell", "console"}
HISTORY = re.compile(r"\b(session|issue)s?\s+#?\d", re.IGNORECASE)


def doc_files() -> list[Path]:
    """README, the benchmarks page and docs/, without generated comparison reports."""
    pages = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [p for p in pages if p.exists() and not p.read_text().startswith("# rlsuite comparison report")]


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    info: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _skip_reason(line: str) -> str | None:
    match = SKIP.search(line)
    if match is None:
        return None
    reason = match.group("reason").strip()
    assert reason, f"a docs-test skip marker needs a reason: {line.strip()!r}"
    return reason


def split_page(path: Path) -> tuple[list[Block], list[tuple[int, str]]]:
    """The page's fenced blocks (not skipped) and its prose lines (outside blocks, not skipped)."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    prose: list[tuple[int, str]] = []
    i = 0
    skip_next_block = False
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            skip_next_block = _skip_reason(lines[i]) is not None
            if not skip_next_block:
                prose.append((i + 1, lines[i]))
            i += 1
            continue
        indent = opening.group("indent")
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        assert end < len(lines), f"{path.relative_to(ROOT)}:{i + 1}: unclosed code block"
        body = "\n".join(line.removeprefix(indent) for line in lines[i + 1 : end])
        info = opening.group("info").strip().split(" ")[0].lower()
        if not skip_next_block:
            blocks.append(Block(path, i + 1, info, body))
        skip_next_block = False
        i = end + 1
    return blocks, prose


def python_blocks() -> Iterator[Block]:
    for path in doc_files():
        yield from (b for b in split_page(path)[0] if b.info in {"python", "py", "pycon"})


def _logical_lines(text: str) -> Iterator[str]:
    """Shell lines with backslash continuations joined."""
    pending = ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def _commands_in_shell_line(line: str) -> list[list[str]]:
    """The `rlsuite ...` commands of one shell line (several when chained with && or |)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens = list(lexer)
    commands, current = [], []
    for token in [*tokens, ";"]:
        if token in {"&&", "||", ";", "|", "&"}:
            if current and current[0] == "rlsuite":
                commands.append(current[1:])
            current = []
        else:
            current.append(token)
    return commands


@dataclass(frozen=True)
class Command:
    where: str
    text: str
    args: tuple[str, ...]
    inline: bool = False
    """From a prose code span, where a required argument may be left out (`rlsuite export` turns ...)."""
    synopsis: bool = False
    """A usage line with [optional] parts or <placeholders>: only its subcommand and option names are checked."""


SYNOPSIS = re.compile(r"\[\s*-|<[A-Za-z_]+>|\{[a-z]+\|")
OPTION = re.compile(r"(?<![\w-])--?[a-z][a-z0-9-]*")


def _command(where: str, text: str, *, inline: bool = False) -> Iterator[Command]:
    """The commands of one shell line or code span: usage lines whole, executable lines as parsed."""
    if SYNOPSIS.search(text):
        words = text.split()
        if words[0] == "rlsuite" and len(words) > 1:
            yield Command(where, text, (words[1],), inline=inline, synopsis=True)
        return
    for args in _commands_in_shell_line(text):
        yield Command(where, text, tuple(args), inline=inline)


def cli_commands() -> Iterator[Command]:
    for path in doc_files():
        blocks, prose = split_page(path)
        for block in blocks:
            if block.info not in SHELL_INFOS:
                continue
            lines = list(_logical_lines(block.text))
            prompted = any(line.lstrip().startswith("$ ") for line in lines)
            for line in lines:
                stripped = line.strip()
                if prompted:
                    if not stripped.startswith("$ "):
                        continue  # output under a prompt
                    stripped = stripped[2:]
                if "rlsuite" not in stripped.split("#")[0]:
                    continue
                yield from _command(block.where, stripped)
        for number, line in prose:
            for span in re.findall(r"`(rlsuite [^`]+)`", line):
                yield from _command(f"{path.relative_to(ROOT)}:{number}", span, inline=True)


def _id(item: Block | Command) -> str:
    return item.where if isinstance(item, Block) else f"{item.where} {item.text}"


@pytest.mark.parametrize("block", list(python_blocks()), ids=_id)
def test_python_snippet_runs(block: Block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a snippet that writes files writes them here
    if ">>>" in block.text:
        parser = doctest.DocTestParser()
        test = parser.get_doctest(block.text, {"__name__": "__docs__"}, block.where, str(block.path), block.line)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        report: list[str] = []
        runner.run(test, out=report.append)
        assert runner.failures == 0, "".join(report)
    else:
        script = tmp_path / "snippet.py"
        script.write_text(f"# {block.where}\n{block.text}\n")
        runpy.run_path(str(script), run_name="__docs__")  # the snippet as a reader would paste it


COMMANDS = list(cli_commands())


@pytest.mark.parametrize("command", COMMANDS, ids=_id)
def test_cli_command_parses(command: Command):
    assert command.args, f"{command.where}: `{command.text}` names no subcommand"
    name, *rest = command.args
    group = _group()
    # Parse the exact line as the CLI would (options, types, arity, required arguments) without invoking
    # the command; `--help` would stop before values are converted.
    parent = group.context_class(group, info_name="rlsuite")
    sub = group.get_command(parent, name)
    assert sub is not None, f"{command.where}: no subcommand {name!r}"
    if command.synopsis:
        known = {opt for param in sub.params for opt in [*param.opts, *param.secondary_opts]} | {"--help"}
        unknown = [opt for opt in OPTION.findall(command.text) if opt not in known]
        assert not unknown, f"{command.where}: `{command.text}`: rlsuite {name} has no option {unknown}"
        return
    try:
        with sub.make_context(name, list(rest), parent=parent) as ctx:
            params = dict(ctx.params)
    except Exception as err:  # click's UsageError / BadParameter, from typer's bundled click
        if command.inline and type(err).__name__ == "MissingParameter":
            return  # prose may name a command without its required arguments; the options were accepted
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        pytest.fail(f"{command.where}: `{command.text}` does not parse: {message}")
    # The names it uses exist: agents in the registry, env ids in Gymnasium's registry.
    unknown_agents = [a for a in _names(params, "agent", "agents") if a not in AGENTS]
    assert not unknown_agents, f"{command.where}: `{command.text}`: no agent {unknown_agents}"
    envs = [e.split(" (")[0] for e in _names(params, "env", "envs")]  # a report title 'ID (k=v)' names ID
    if ale_py is None:
        envs = [e for e in envs if not e.startswith("ALE/") and "NoFrameskip" not in e]
    unknown_envs = [e for e in envs if e not in gym.registry]
    assert not unknown_envs, f"{command.where}: `{command.text}`: no env id {unknown_envs}"


@functools.cache
def _group() -> Any:
    return get_command(app)


@pytest.mark.parametrize("name", sorted({c.args[0] for c in COMMANDS if c.args}))
def test_help_of_each_documented_subcommand(name: str):
    """`rlsuite <subcommand> --help` works for every subcommand the docs use, through typer's CliRunner."""
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, f"`rlsuite {name} --help` failed:\n{result.output}"


def _names(params: dict, *keys: str) -> list[str]:
    """The comma-separated or repeated names a command passes under these option names."""
    names: list[str] = []
    for key in keys:
        value = params.get(key)
        for item in [value] if isinstance(value, str) else list(value or []):
            names.extend(part.strip() for part in item.split(",") if part.strip())
    return names


def test_commands_are_found():
    """A guard on the extractor itself: the README's tour and the Quick start are seen."""
    texts = [c.text for c in COMMANDS if c.where.startswith("README.md")]
    assert any(t.startswith("rlsuite train --agent ppo --env CartPole-v1") for t in texts), texts
    assert any("rlsuite demo" in t for t in texts), texts
    assert _commands_in_shell_line('pip install -e . && rlsuite demo --out "my demo" # comment') == [
        ["demo", "--out", "my demo"]]
    assert _commands_in_shell_line("rlsuite-like-tool x | grep rlsuite") == []
    (usage,) = _command("x", "rlsuite export RUN_DIR --out policy.onnx [--checkpoint best|last|N]")
    assert usage.synopsis and usage.args == ("export",)


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in split_page(page)[1]:
        heading = re.match(r"^#{1,6}\s+(.*)$", line[1])
        if heading:
            text = heading.group(1).strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def test_relative_links_resolve():
    broken = []
    for path in doc_files():
        for number, line in split_page(path)[1]:
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"^[a-z]+:", target):
                    continue  # http:, https:, mailto:
                file_part, _, anchor = target.partition("#")
                resolved = (path.parent / file_part).resolve() if file_part else path
                where = f"{path.relative_to(ROOT)}:{number}"
                if not resolved.exists():
                    broken.append(f"{where}: {target} (no such file)")
                elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                    broken.append(f"{where}: {target} (no heading with that anchor)")
    assert not broken, "\n".join(broken)


def test_docs_are_current_and_short():
    history = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in doc_files()
               for n, line in enumerate(p.read_text().splitlines(), 1) if HISTORY.search(line)]
    assert not history, "docs describe what is; git keeps the history:\n" + "\n".join(history)
    assert len((ROOT / "README.md").read_text().splitlines()) <= 175
    benchmark_pages = [ROOT / "benchmarks" / "README.md"]
    assert sum(len(p.read_text().splitlines()) for p in benchmark_pages) <= 300
    assert not (ROOT / "benchmarks" / "RESULTS.md").exists()


REPO_FOLDERS = ("agents/", "envs/", "evaluation/", "policies/", "rlsuite/", "benchmarks/", "tests/", "docs/", "sweeps/")


def test_paths_named_in_docs_exist():
    """A code span naming a repository file or folder (`envs/reacher.py`, `agents/presets/ppo.yaml`,
    `tests/test_dqn.py::test_x`, `agents/ppo.py:PPOSettings`) names one that exists."""
    missing = []
    for path in doc_files():
        for number, line in split_page(path)[1]:
            for span in re.findall(r"`([^`\s]+)`", line):
                name = re.sub(r"<[^>]+>", "*", span.split("::")[0].split(":")[0])  # <agent> matches any
                if not name.startswith(REPO_FOLDERS) or re.match(r"rlsuite/[A-Z]", name) or "..." in name:
                    continue  # not a path, or an env id such as rlsuite/Highway-v0
                if not any(ROOT.glob(name.rstrip("/"))):
                    missing.append(f"{path.relative_to(ROOT)}:{number}: `{span}`")
    assert not missing, "\n".join(missing)
