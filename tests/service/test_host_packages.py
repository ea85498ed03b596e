"""Every program the code runs on the host comes from a Debian package that setup installs.

A program that only the developers' machines happen to have (``nft`` once) works in CI and fails on
a fresh machine.  This test collects the external commands the host-side code runs — Python's
subprocess calls, ``shutil.which`` look-ups, the programs podman runs for the local cloud, and the
commands of the shell scripts behind ``make`` — and asks ``dpkg -S`` which package each comes from:
that package must be in ``scripts/debian-packages.txt`` (or be one of Debian's essential packages,
which every Debian system has).  Programs of the virtualenv (the AWS CLI, moto) come from
pyproject.toml instead.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_LIST = ROOT / "scripts" / "debian-packages.txt"
# Code that runs on the host (hadoop_templates/ and docker/node/ other than build.sh run on the nodes).
PYTHON_DIRS = ["resilin", "api", "storage", "provisioners", "overlay", "migrate", "bench", "tests"]
SHELL_SCRIPTS = [
    "scripts/setup.sh",
    "scripts/setup-venv.sh",
    "scripts/setup-podman.sh",
    "scripts/setup-minio.sh",
    "docker/node/build.sh",
    ".ci/run",
    "Makefile",
]

SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output", "create_subprocess_exec"}
# Commands that run the command named after their own options.
WRAPPERS = {"nsenter", "env", "sudo", "timeout", "nice", "setsid", "unshare", "xargs", "exec", "stdbuf"}
SHELL_WORDS = {
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "in",
    "function", "select", "time", "{", "}", "[[", "]]", "!", "@",
}  # fmt: skip


def listed_packages() -> set[str]:
    names = set()
    for line in PACKAGE_LIST.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.add(name)
    return names


def essential_packages() -> set[str]:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Essential}\n"], capture_output=True, text=True, check=True
    )
    return {line.split()[0] for line in done.stdout.splitlines() if line.endswith(" yes")}


def provides(package: str) -> set[str]:
    """The names an installed package also stands for (a nodejs that bundles npm provides npm)."""
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Provides}", package], capture_output=True, text=True)
    return {re.sub(r"\(.*?\)", "", name).strip() for name in done.stdout.split(",") if name.strip()}


def _wrapped(words: list[str | None]) -> list[str]:
    """The program an argv runs, and the one its wrapper runs (``nsenter --target PID --net nft``)."""
    found: list[str] = []
    i = 0
    while i < len(words):
        name = words[i]
        if name is None:
            break
        found.append(name)
        if os.path.basename(name) not in WRAPPERS:
            break
        i += 1  # the wrapped program: the next literal word that is no option, option value or number
        while i < len(words) and (
            words[i] is None or words[i].startswith("-") or "=" in words[i] or words[i].isdigit()
        ):
            i += 1
    return found


def _list_literal(node: ast.AST, assigned: dict[str, ast.AST]) -> list[str | None] | None:
    if isinstance(node, ast.Name) and node.id in assigned:
        node = assigned[node.id]
    if isinstance(node, ast.List | ast.Tuple):
        return [
            e.value if isinstance(e, ast.Constant) and isinstance(e.value, str) else None for e in node.elts
        ]
    return None


def python_programs(path: Path) -> set[str]:
    """Programs a Python file runs: literal argv lists of subprocess calls, and ``shutil.which`` names."""
    tree = ast.parse(path.read_text(), str(path))
    assigned = {
        target.id: node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        first = node.args[0]
        if name == "which" and isinstance(first, ast.Constant) and isinstance(first.value, str):
            found.add(first.value)
        elif name in SUBPROCESS_CALLS:
            if name == "create_subprocess_exec":
                words = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
            else:
                words = _list_literal(first, assigned) or []
            found.update(_wrapped(words))
    return found


def _without_heredocs(text: str) -> str:
    """The script with the bodies of its here-documents left out (they are data, not commands)."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        out.append(lines[i])
        match = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", lines[i])
        i += 1
        if match:
            while i < len(lines) and lines[i].strip() != match.group(1):
                i += 1
            i += 1
    return "\n".join(out)


def _blank_single_quotes(text: str) -> str:
    """Single-quoted text (awk programs, sed scripts, literal file contents) emptied: it runs nothing here."""
    out, quote = [], ""
    for char in text:
        if quote == "'":
            if char == "'":
                quote = ""
                out.append(char)
            continue
        if char in "'\"" and quote in ("", char):
            quote = "" if quote else char
        out.append(char)
    return "".join(out)


def _shell_tokens(text: str) -> list[str]:
    """The script's words and operators, newlines kept as separators, quoted words whole."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars="();<>|&\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    lexer.commenters = ""  # shlex would also cut at the '#' of ${#name}; comments go beforehand
    return list(lexer)


def shell_programs(path: Path) -> set[str]:
    """The command words of a shell script or Makefile recipes (simple commands, pipelines, $(…))."""
    text = path.read_text()
    if path.name == "Makefile":
        text = "\n".join(line[1:] for line in text.splitlines() if line.startswith("\t"))
    text = _without_heredocs(text).replace("\\\n", " ")
    text = re.sub(r"(^|[ \t])#[^\n]*", r"\1", text, flags=re.M)  # comments (a '#' that starts a word)
    defined = set(re.findall(r"^\s*(?:function\s+)?([\w-]+)\s*\(\)", text, re.M))
    tokens = _shell_tokens(_blank_single_quotes(text))
    found: set[str] = set()
    command_position, in_case, in_array = True, False, False
    for i, token in enumerate(tokens):
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        found.update(re.findall(r"\$\(\s*([\w./-]+)", token))  # $(cmd) inside a double-quoted word
        if in_array:
            in_array = ")" not in token
            continue
        if token and set(token) <= set("();|&<>\n"):
            command_position = token not in ("<", ">", ">>", "<<", "<<<", "<&", ">&")
            continue
        if not command_position:
            continue
        if token.endswith("=") and following.startswith("("):
            in_array = True  # NAME=( … ): an array's items
            continue
        if "=" in token.split("/")[0] or token.startswith(("$", "-", "'", '"')):
            continue  # an assignment before the command, or a variable: the command is further on
        if token in ("for", "select", "case", "in"):
            in_case = in_case or token == "case"
            command_position = False  # a loop variable, a subject, a list of words
            continue
        if token == "esac":
            in_case = False
        if token in SHELL_WORDS or (in_case and following in (")", "|")):
            continue  # a keyword, or a case pattern
        found.add(token)
        command_position = os.path.basename(token) in WRAPPERS
    builtins = set(
        subprocess.run(["bash", "-c", "compgen -b -k"], capture_output=True, text=True).stdout.split()
    )
    return {p for p in found if p not in builtins and p not in defined and re.fullmatch(r"[\w./+-]+", p)}


def podman_programs() -> set[str]:
    """What podman runs for the local cloud: its monitor, its OCI runtime and its network backend."""
    if shutil.which("podman") is None:
        return set()
    host = json.loads(
        subprocess.run(["podman", "info", "--format", "json"], capture_output=True, text=True).stdout
    )["host"]
    backend = host.get("networkBackend", "")
    found = {host["conmon"]["path"], host["ociRuntime"]["path"]}
    if backend:
        found.add(f"/usr/lib/podman/{backend}" if backend == "netavark" else backend)
    return found


def host_programs() -> dict[str, set[str]]:
    """Program name or path → the files that run it."""
    programs: dict[str, set[str]] = {}
    for folder in PYTHON_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for program in python_programs(path):
                programs.setdefault(program, set()).add(str(path.relative_to(ROOT)))
    for script in SHELL_SCRIPTS:
        for program in shell_programs(ROOT / script):
            programs.setdefault(program, set()).add(script)
    for program in podman_programs():
        programs.setdefault(program, set()).add("podman (for the local cloud)")
    return programs


def _is_projects_own(program: str) -> bool:
    """A file of this repository or of its virtualenv (Python packages come from pyproject.toml)."""
    if os.path.isabs(program):
        return False
    if program.startswith((".venv/", "scripts/", "docker/", "./")) or (ROOT / program).is_file():
        return True
    return (ROOT / ".venv" / "bin" / program).exists()


def package_of(program: str) -> str | None:
    """The Debian package that installed ``program`` (a name on PATH or a path), or None."""
    path = program if os.path.isabs(program) else shutil.which(program)
    if path is None:
        return None
    candidates = [path, os.path.realpath(path)]
    for p in list(candidates):  # merged /usr: dpkg may know the file under /bin or /usr/bin
        if p.startswith("/usr/"):
            candidates.append(p[4:])
        else:
            candidates.append("/usr" + p)
    for candidate in candidates:
        done = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout.split(":", 1)[0].split(",")[0].strip()
    return None


def test_the_scan_finds_the_programs_the_local_cloud_and_setup_run():
    found = host_programs()
    # One from each kind of place: a wrapped argv (nsenter … nft), a which(), a shell script, podman's own.
    for program in (
        "nft",
        "nsenter",
        "podman",
        "redis-server",
        "ssh-keygen",
        "debootstrap",
        "mvn",
        "apt-get",
    ):
        assert program in found, f"{program} not collected; found {sorted(found)}"


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="a Debian host")
def test_every_host_program_comes_from_a_package_setup_installs():
    allowed = listed_packages() | essential_packages()
    wrong = []
    for program, users in sorted(host_programs().items()):
        if _is_projects_own(program):
            continue
        package = package_of(program)
        if package is None:
            wrong.append(f"{program} (run by {', '.join(sorted(users))}): not installed by any package")
        elif package not in allowed and not provides(package) & allowed:
            wrong.append(
                f"{program} (run by {', '.join(sorted(users))}): from {package}, not in {PACKAGE_LIST.name}"
            )
    assert not wrong, "programs setup does not install:\n" + "\n".join(wrong)


def test_setup_reads_the_one_package_list():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "debian-packages.txt" in setup
    # No second list: the podman script configures, it installs nothing.
    assert "apt-get" not in (ROOT / "scripts" / "setup-podman.sh").read_text()
