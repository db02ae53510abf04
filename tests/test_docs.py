"""The project explains itself: docs/ exists, every reference into it resolves,
nothing cites a document outside the repository, and committed reports name
no machine path."""

import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPO, "docs")
# Where users read: code, help texts, benchmarks, the top-level guides, docs.
SOURCES = (sorted(glob.glob(os.path.join(REPO, "sn_tf", "**", "*.py"), recursive=True))
           + sorted(glob.glob(os.path.join(REPO, "launchers", "*.py")))
           + sorted(glob.glob(os.path.join(REPO, "benchmarks", "*.py")))
           + [os.path.join(REPO, "README.md"), os.path.join(REPO, "BUILD_NOTES.md")]
           + sorted(glob.glob(os.path.join(DOCS, "*.md"))))


def _read(path):
  with open(path, encoding="utf-8") as f:
    return f.read()


def anchors(markdown):
  """GitHub's heading anchors: lower case, punctuation dropped, spaces to
  hyphens, repeats numbered -1, -2, ..."""
  found, seen = set(), {}
  in_code = False
  for line in markdown.splitlines():
    if line.startswith("```"):
      in_code = not in_code
    m = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
    if not m:
      continue
    slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
    n = seen.get(slug, 0)
    seen[slug] = n + 1
    found.add(slug if n == 0 else f"{slug}-{n}")
  return found


def test_anchor_rules_match_github():
  text = "# sn_tf reference\n## MinAtar\n### minatar\n## Effective rank (srank)\n```\n# not\n```\n"
  assert anchors(text) == {"sn_tf-reference", "minatar", "minatar-1",
                           "effective-rank-srank"}


def test_docs_exist_and_the_readme_links_them_near_the_top():
  for name in ("README.md", "layers.md", "schedulers.md", "protocol.md", "measures.md"):
    assert os.path.isfile(os.path.join(DOCS, name)), name
  top = "\n".join(_read(os.path.join(REPO, "README.md")).splitlines()[:25])
  assert "(docs/README.md)" in top


def _references():
  """(source, target file, anchor or None) for every docs reference."""
  refs = []
  for path in SOURCES:
    text = _read(path)
    base = os.path.dirname(path)
    if path.endswith(".md"):  # Markdown links outside code blocks, relative to the file
      prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
      for target, anchor in re.findall(r"\]\(([^)\s#]*)(?:#([^)\s]+))?\)", prose):
        if re.match(r"^[a-z]+:", target):
          continue  # http:, https:, mailto:
        file = os.path.normpath(os.path.join(base, target)) if target else path
        refs.append((path, file, anchor or None))
    # Plain mentions like docs/protocol.md#presets (code, help texts, prose).
    for target, anchor in re.findall(r"(?<![\w./])docs/([\w.-]+\.md)(?:#([\w-]+))?", text):
      refs.append((path, os.path.join(DOCS, target), anchor or None))
  return refs


def test_every_docs_reference_resolves():
  refs = _references()
  assert len([r for r in refs if not r[0].endswith(".md")]) >= 20  # code cites docs
  for source, file, anchor in refs:
    where = os.path.relpath(source, REPO)
    assert os.path.exists(file), f"{where} links {file}, which does not exist"
    if anchor and file.endswith(".md"):
      assert anchor in anchors(_read(file)), f"{where} links {file}#{anchor}: no such heading"


def test_nothing_cites_a_document_outside_the_repository():
  for path in SOURCES:
    for i, line in enumerate(_read(path).splitlines(), 1):
      assert "SPEC" not in line, f"{os.path.relpath(path, REPO)}:{i}: {line.strip()}"


@pytest.mark.parametrize("path", sorted(
    p for p in glob.glob(os.path.join(REPO, "benchmarks", "results", "**", "*"),
                         recursive=True)
    if os.path.isfile(p) and p.endswith((".md", ".json", ".csv", ".txt", ".yaml"))),
    ids=lambda p: os.path.relpath(p, REPO))
def test_committed_results_name_no_machine_path(path):
  text = _read(path)
  machine = re.compile(r"(?<![\w.~])/(?:work|tmp|root|home|Users|mnt|var|opt|private)/")
  for needle in (REPO, os.path.expanduser("~") + "/"):
    assert needle not in text, f"{os.path.relpath(path, REPO)} contains {needle!r}"
  found = machine.search(text)
  assert found is None, (f"{os.path.relpath(path, REPO)} contains an absolute "
                         f"path near {text[max(0, found.start() - 20):found.end() + 40]!r}")
