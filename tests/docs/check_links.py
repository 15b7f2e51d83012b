#!/usr/bin/env python3
"""Checks the relative links and images of README.md and docs/*.md: the file exists, and a
#anchor into a markdown file names one of its headings (GitHub's heading ids). Links to
http(s) and mailto are not followed. One line per broken link: file:line: target: why.

    python3 tests/docs/check_links.py [--source .]
"""
import argparse
import pathlib
import re
import sys

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


def markdown_lines(path):
    """(line number, text) outside fenced code blocks, inline code removed."""
    fence = None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1).startswith(fence):
                fence = None
            continue
        if fence is None:
            yield n, re.sub(r"`[^`]*`", "", line)


def heading_ids(path):
    """GitHub's ids of a file's headings: lower case, punctuation dropped, spaces to '-', -1, -2 for repeats."""
    ids, seen = set(), {}
    fence = None
    for line in path.read_text().splitlines():
        m = FENCE.match(line)
        if m:
            fence = m.group(1) if fence is None else (None if m.group(1).startswith(fence) else fence)
            continue
        h = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fence is None and h:
            slug = re.sub(r"[^\w\- ]", "", h.group(1).lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            ids.add(slug if count == 0 else f"{slug}-{count}")
    return ids


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default=pathlib.Path(__file__).resolve().parents[2], type=pathlib.Path)
    args = p.parse_args()
    root = args.source.resolve()
    files = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    broken, count = [], 0
    for md in files:
        for n, line in markdown_lines(md):
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target):
                    continue
                count += 1
                path, _, anchor = target.partition("#")
                dest = (md.parent / path).resolve() if path else md
                where = f"{md.relative_to(root)}:{n}: {target}"
                if not dest.exists():
                    broken.append(f"{where}: no such file {dest.relative_to(root) if dest.is_relative_to(root) else dest}")
                elif anchor and dest.suffix == ".md" and anchor not in heading_ids(dest):
                    broken.append(f"{where}: no heading with the id '{anchor}' in {dest.relative_to(root)}")
    print(f"check_links: {count} relative links in {len(files)} files, {len(broken)} broken")
    for b in broken:
        print(b)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
