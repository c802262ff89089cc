"""The documentation stays navigable: a short README, links that resolve, and code paths that exist.

- README.md is a front page (under 200 lines); the detail lives in docs/.
- Every relative Markdown link in README.md, docs/*.md and egs/*/README.md names an existing file,
  and a ``#anchor`` names a heading of the target file (GitHub's rule: lowercase, drop what is
  not a letter, digit, underscore, hyphen or space, spaces to hyphens, ``-1``, ``-2`` ... for repeats).
- Every ``steps/``, ``pyfunc/``, ``local/``, ``conf/`` or ``bench/`` path written in backticks in
  README.md and docs/design.md exists (placeholders and globs are skipped).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 200

FENCE = re.compile(r"^ {0,3}(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
CODE_PATH_PREFIXES = ("steps/", "pyfunc/", "local/", "conf/", "bench/")
PLACEHOLDER_CHARS = ("<", "*", "{", "$", "...", "[")
PLACEHOLDER_WORD = re.compile(r"^[A-Z][A-Z0-9_]*$")  # DIR, EXP, SET, MODEL_DIR as a path component


def _markdown_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "egs").glob("*/README.md"))]
    return [f for f in files if f.is_file()]


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with HTML comments removed."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    lines, in_fence = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            lines.append(line)
    return lines


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, repeats numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(match.group(2))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        out.add(anchor if count == 0 else f"{anchor}-{count}")
    return out


def test_github_anchor_rule():
    assert github_anchor("The mini recipe: what `bash run.sh` gives") == "the-mini-recipe-what-bash-runsh-gives"
    assert github_anchor("AS-norm (stage 5)") == "as-norm-stage-5"
    assert github_anchor("Mean subtraction, calibration, the operating point") == (
        "mean-subtraction-calibration-the-operating-point")


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES, (
        f"README.md has {len(lines)} lines; keep it under {README_MAX_LINES} and move detail to docs/")


@pytest.mark.parametrize("md", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(md: Path):
    broken = []
    for number, line in enumerate(_prose_lines(md.read_text(encoding="utf-8")), 1):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
                continue
            file_part, _, anchor = target.partition("#")
            path = (md.parent / file_part).resolve() if file_part else md
            if not path.exists():
                broken.append(f"{target}: no such file")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{target}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert not broken, f"{md.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)


def code_paths(text: str) -> set[str]:
    """The repository paths written in backticks (every word of a span that starts like one), placeholders skipped."""
    paths = set()
    for line in _prose_lines(text):
        for _, span in INLINE_CODE.findall(line):
            for word in span.split():
                word = word.strip("\"'(),;:")
                if not word.startswith(CODE_PATH_PREFIXES):
                    continue
                if any(c in word for c in PLACEHOLDER_CHARS):
                    continue
                if any(PLACEHOLDER_WORD.match(part) for part in word.split("/")):
                    continue
                paths.add(word)
    return paths


@pytest.mark.parametrize("md", ["README.md", "docs/design.md"])
def test_code_paths_exist(md: str):
    paths = code_paths((ROOT / md).read_text(encoding="utf-8"))
    assert paths, f"{md}: no code paths found (the pattern is broken)"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"{md} names paths that do not exist: {missing}"


def test_design_lists_every_python_file_of_the_package_and_recipes() -> None:
    """docs/design.md's file list is `find pyfunc egs local -name '*.py' | sort` of the repository (tracked files)."""
    text = (ROOT / "docs" / "design.md").read_text()
    section = text.split("## The files", 1)[1]
    listed = section.split("```text\n", 1)[1].split("```", 1)[0].split()
    tracked = subprocess.run(["git", "ls-files", "pyfunc/*.py", "egs/*.py", "local/*.py"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    assert listed == sorted(tracked), "docs/design.md, 'The files': regenerate it with " \
        "find pyfunc egs local -name '*.py' | sort"
