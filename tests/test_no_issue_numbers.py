"""No committed text names an issue by its number.

Catches: headings, prose, comments and docstrings that named a tracker entry ("(issue" then its
number, in brackets) instead of saying what the thing is; a reader of the book or the code has no issue tracker to look them up in.
"""
from __future__ import annotations

import re
import subprocess

from infercam.config import PROJECT_ROOT

ISSUE = re.compile(r"\bissues? #?\d+", re.IGNORECASE)


def committed_text_files():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        path = PROJECT_ROOT / name
        if not path.is_file():
            continue  # deleted in the work tree, not yet committed
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        yield name, data.decode("utf-8", errors="replace")


def test_no_issue_numbers_in_committed_text():
    found = [f"{name}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)!r}"
             for name, text in committed_text_files() for match in ISSUE.finditer(text)]
    assert not found, "issue numbers in committed text (say what the thing is instead):\n" + "\n".join(found)
