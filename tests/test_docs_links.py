"""Every pointer into the documentation resolves, so that restructuring a page can never
silently break a code comment, a `--help` string or a link.

- In specgan_jax/, scripts/ and specgan_torch_ref/: every `docs/<name>.md` names an existing
  page, and `docs/<name>.md, "<heading>"` one of its headings; every mention of the README is a
  `README, "<heading>"` reference to an existing README heading (a bare "README" or
  "README, seed bug 7" says nowhere precise and fails).
- In README.md and docs/*.md: every relative link resolves, a `#anchor` included (GitHub's
  heading anchors), and the README links every page of docs/.

References may wrap over lines: comment markers and indentation are joined away first.
"""

import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE_TREES = ("specgan_jax", "scripts", "specgan_torch_ref")

_QUOTED = r"""(?:"([^"]+)"|'([^']+)')"""
DOCS_REF = re.compile(r"\bdocs/([A-Za-z0-9_.-]+?\.md)\b(?:,\s*" + _QUOTED + ")?")
README_WORD = re.compile(r"\bREADME\b(?!\.md)")
README_REF = re.compile(r"\bREADME\b(?!\.md)[,\s(]*" + _QUOTED)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _flatten(text):
    """One line: each line's indentation and leading comment markers removed, then joined
    with a space, so that `(README, "One model\\n    # for all classes")` reads whole."""
    return " ".join(re.sub(r"^\s*#*\s*", "", line) for line in text.splitlines())


def _prose_lines(markdown):
    """The lines of a markdown text outside fenced code blocks."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


def headings(markdown):
    """Heading texts, backticks removed (a reference need not quote the code markup)."""
    found = []
    for line in _prose_lines(markdown):
        m = HEADING.match(line)
        if m:
            found.append(m.group(1).replace("`", "").strip())
    return found


def github_anchor(heading):
    """GitHub's anchor of a heading: lower case, punctuation other than - and _ dropped,
    spaces to hyphens (uniqueness suffixes are added by `anchors`)."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown):
    seen, out = {}, set()
    for h in headings(markdown):
        a = github_anchor(h)
        n = seen.get(a, 0)
        out.add(a if n == 0 else f"{a}-{n}")
        seen[a] = n + 1
    return out


def _code_files():
    for tree in CODE_TREES:
        for root, _, files in os.walk(os.path.join(REPO, tree)):
            for name in sorted(files):
                if name.endswith(".py"):
                    yield os.path.join(root, name)


def _markdown_files():
    docs = os.path.join(REPO, "docs")
    return [os.path.join(REPO, "README.md")] + sorted(
        os.path.join(docs, n) for n in os.listdir(docs) if n.endswith(".md"))


def _rel(path):
    return os.path.relpath(path, REPO)


def _check_docs_refs(path, flat, problems):
    count = 0
    for m in DOCS_REF.finditer(flat):
        count += 1
        page, heading = m.group(1), m.group(2) or m.group(3)
        target = os.path.join(REPO, "docs", page)
        if not os.path.isfile(target):
            problems.append(f"{_rel(path)}: docs/{page} does not exist")
        elif heading is not None and heading.strip() not in headings(_read(target)):
            problems.append(f'{_rel(path)}: docs/{page} has no heading "{heading}"')
    return count


def _check_readme_refs(path, flat, readme_headings, problems, strict):
    count = 0
    refs = {m.start(): m.group(1) or m.group(2) for m in README_REF.finditer(flat)}
    for m in README_WORD.finditer(flat):
        heading = refs.get(m.start())
        if heading is None:
            if strict:
                context = flat[m.start():m.start() + 50]
                problems.append(f"{_rel(path)}: a README pointer without a heading: {context!r}")
            continue
        count += 1
        if heading.strip() not in readme_headings:
            problems.append(f'{_rel(path)}: README has no heading "{heading}"')
    return count


def test_code_references_resolve():
    readme_headings = headings(_read(os.path.join(REPO, "README.md")))
    problems, count = [], 0
    for path in _code_files():
        flat = _flatten(_read(path))
        count += _check_docs_refs(path, flat, problems)
        count += _check_readme_refs(path, flat, readme_headings, problems, strict=True)
    assert not problems, "\n".join(problems)
    assert count > 10, f"only {count} documentation references found in the code: the scan is broken"


def test_markdown_text_references_resolve():
    """`docs/<name>.md` and `README, "<heading>"` written as text in the pages themselves."""
    readme_headings = headings(_read(os.path.join(REPO, "README.md")))
    problems = []
    for path in _markdown_files():
        flat = " ".join(_prose_lines(_read(path)))
        _check_docs_refs(path, flat, problems)
        _check_readme_refs(path, flat, readme_headings, problems, strict=False)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", [_rel(p) for p in _markdown_files()])
def test_relative_links_resolve(page):
    path = os.path.join(REPO, page)
    problems = []
    for line in _prose_lines(_read(path)):
        for m in LINK.finditer(line):
            target = m.group(1)
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) \
                if file_part else path
            if not os.path.exists(dest):
                problems.append(f"{page}: {target}: {_rel(dest)} does not exist")
            elif anchor and dest.endswith(".md") and anchor not in anchors(_read(dest)):
                problems.append(f"{page}: {target}: no heading with anchor #{anchor}")
    assert not problems, "\n".join(problems)


def test_readme_links_every_docs_page():
    readme = _read(os.path.join(REPO, "README.md"))
    linked = {os.path.normpath(m.group(1).partition("#")[0]) for m in LINK.finditer(readme)}
    missing = [_rel(p) for p in _markdown_files()[1:] if _rel(p) not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


def test_the_checks_catch_broken_references():
    """The extractors on known text: a wrapped reference is found whole, a missing heading or
    page and a vague README pointer are reported, and anchors follow GitHub's rule."""
    flat = _flatten('x = 1  # collapsed (README, "One model\n    # for all classes"); '
                    'see docs/no-such-page.md and docs/demo.md, "No such heading"; README, seed bug 7')
    problems = []
    assert _check_readme_refs("t.py", flat, ["One model for all classes"], problems, True) == 1
    assert _check_docs_refs("t.py", flat, problems) == 2
    assert len(problems) == 3, problems
    assert github_anchor("XLA's own convolutions instead of YNNPACK's") == \
        "xlas-own-convolutions-instead-of-ynnpacks"
    assert github_anchor("Multi-device and multi-host") == "multi-device-and-multi-host"
    assert github_anchor("Transitional conditioning (the default)") == \
        "transitional-conditioning-the-default"
    assert anchors("# A\n```\n# not a heading\n```\n## A\n") == {"a", "a-1"}
