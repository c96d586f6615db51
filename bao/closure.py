"""The project files each stage runs, from its script's imports: what dvc.yaml's code deps must be.

    python -m bao.closure            # every stage: its code deps
    python -m bao.closure --write    # rewrite the code part of each stage's deps in dvc.yaml

Development tooling (tests/test_graph.py checks dvc.yaml with it); no stage imports it.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

from bao.core.pipeline import resolve, stage_names


def code_closure(script: str | Path, packages: tuple[str, ...] = ("bao",)) -> list[str]:
    """The project files a script runs: itself, every project module it imports (transitively, also
    inside functions), and the ``__init__.py`` of each package on the way; paths relative to the root."""
    import ast

    def module_file(name: str) -> Path | None:
        base = Path(*name.split("."))
        for cand in (base.with_suffix(".py"), base / "__init__.py"):
            if cand.is_file():
                return cand
        return None

    seen: set[Path] = set()
    todo = [Path(script)]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] not in packages:
                    continue
                parts = name.split(".")
                for i in range(1, len(parts) + 1):  # a.b.c imports a, a.b, a.b.c
                    mf = module_file(".".join(parts[:i]))
                    if mf is not None and mf not in seen:
                        todo.append(mf)
    return sorted(p.as_posix() for p in seen)


def stage_script(stage: str, raw_params: dict | None = None) -> str:
    """The ``stages/<name>.py`` a stage's cmd runs (``python -m stages.<name> ...``)."""
    cmd = resolve(stage, raw_params)["cmd"].split()
    return cmd[cmd.index("-m") + 1].replace(".", "/") + ".py"


def stage_code(stage: str, raw_params: dict | None = None) -> list[str]:
    """A stage's code deps: its script's closure and the ``__init__.py`` of the script's package,
    which ``python -m`` runs first."""
    script = Path(stage_script(stage, raw_params))
    return sorted(set(code_closure(script)) | {(script.parent / "__init__.py").as_posix()})


_DEPS = re.compile(r"(^[ ]+deps:[ ]*(?:&\w+[ ]*)?)\[(.*?)\]", re.M | re.S)


def write_deps(dvc_yaml: Path = Path("dvc.yaml")) -> bool:
    """Rewrite the code entries (``*.py``) of each stage's ``deps: [...]`` list in dvc.yaml to the
    stage's closure, keeping every other entry and comment; True if the file changed."""
    text = dvc_yaml.read_text()
    stages = {}
    for name in stage_names():
        stages.setdefault(name.split("@")[0], stage_code(name))
    out, pos = [], 0
    # each stage's block: from its "  <name>:" header to the next header
    headers = [(m.start(), m.group(1)) for m in re.finditer(r"^  ([\w@]+):\s*$", text, re.M)]
    for (start, name), nxt in zip(headers, [h[0] for h in headers[1:]] + [len(text)]):
        if name not in stages:
            continue
        block = text[start:nxt]
        m = _DEPS.search(block)
        if m is None:
            continue
        items = [s.strip() for s in re.split(r",(?![^{]*})", re.sub(r"#[^\n]*", "", m.group(2))) if s.strip()]
        rest = [s for s in items if not s.endswith(".py")]
        new = ", ".join(stages[name] + rest)
        wrapped = textwrap.fill(new, 110, subsequent_indent=" " * 8, break_long_words=False, break_on_hyphens=False)
        comments = "".join(re.findall(r"[ ]*#[^\n]*", m.group(2)))
        out.append(
            text[pos : start + m.start()] + m.group(1) + "[" + wrapped + "]" + (comments and "  " + comments.strip())
        )
        pos = start + m.end()
    new_text = "".join(out) + text[pos:]
    if new_text != text:
        dvc_yaml.write_text(new_text)
    return new_text != text


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        print("dvc.yaml: rewritten" if write_deps() else "dvc.yaml: up to date")
    else:
        for name in stage_names():
            print(f"{name}: [{', '.join(stage_code(name))}]")
