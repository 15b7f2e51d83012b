#!/usr/bin/env python3
"""Translates a CUDA source of kernels/cuda/ into C++ for the CPU emulation (emu.h).

Three rewrites, everything else is left as written:
  kernel<<<grid, block, shared, stream>>>(args);
      ->  ::emu::launch(::emu::Kernel{<address of kernel or null>, "kernel", __FILE__, __LINE__},
                        grid, block, shared, stream, [&](auto&... a) { kernel(a...); }, args);
  extern __shared__ T name[];
      ->  T* name = static_cast<T*>(::emu::dynamic_shared());
  __shared__ T name[N]...;
      ->  __shared__ T name[N]...; ::emu::static_shared(&name, sizeof(name));
The kernel's address keys the cudaFuncSetAttribute opt-in; a template kernel whose arguments are
deduced at the launch has no nameable address and gets null (the 48 KiB default applies).
Usage: translate_cu.py INPUT OUTPUT
"""
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))

SHARED = re.compile(r"extern\s+__shared__\s+([\w:]+)\s+(\w+)\s*\[\s*\]\s*;")
STATIC_SHARED = re.compile(r"(?<!extern )(__shared__\s+[\w:<>]+\s+(\w+)\s*(?:\[[^\];]*\]\s*)*;)")
# The address of a kernel when it can be named without its template arguments, else null.
ADDRESS = ("[]<class Emu_ = void>() -> const void* {{ if constexpr (requires {{ &{0}; }}) "
           "return reinterpret_cast<const void*>(&{0}); else return nullptr; }}()")


def split_top_level(text):
    """Splits on commas outside parentheses, brackets and braces."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def matching_paren(text, open_index):
    depth = 0
    for i in range(open_index, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced parentheses after a kernel launch")


def translate(src, name):
    """name: the source's path as launch refusals print it."""
    src = SHARED.sub(lambda m: f"{m.group(1)}* {m.group(2)} = static_cast<{m.group(1)}*>(::emu::dynamic_shared());", src)
    src = STATIC_SHARED.sub(lambda m: f"{m.group(1)} ::emu::static_shared(&{m.group(2)}, sizeof({m.group(2)}));", src)
    out, pos = [], 0
    while True:
        start = src.find("<<<", pos)
        if start < 0:
            out.append(src[pos:])
            return "".join(out)
        name_match = re.search(r"([\w:]+)\s*$", src[pos:start])
        if not name_match:
            raise ValueError("kernel launch without a kernel name")
        name_start = pos + name_match.start(1)
        end_config = src.index(">>>", start)
        config = split_top_level(src[start + 3:end_config])
        config += ["0", "nullptr"][len(config) - 2:] if len(config) < 4 else []
        open_paren = src.index("(", end_config)
        close_paren = matching_paren(src, open_paren)
        args = src[open_paren + 1:close_paren]
        out.append(src[pos:name_start])
        kernel = name_match.group(1)
        line = src.count("\n", 0, start) + 1
        info = f'::emu::Kernel{{{ADDRESS.format(kernel)}, "{kernel}", "{name}", {line}}}'
        call = f"[&](auto&... emu_args) {{ {kernel}(emu_args...); }}"
        rest = f", {args}" if args.strip() else ""
        out.append(f"::emu::launch({info}, {', '.join(config)}, {call}{rest})")
        pos = close_paren + 1


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        text = translate(f.read(), os.path.relpath(os.path.abspath(sys.argv[1]), ROOT))
    with open(sys.argv[2], "w") as f:
        f.write(f"// Translated from {sys.argv[1]} by tests/cuda/emulator/translate_cu.py.\n")
        f.write(text)


if __name__ == "__main__":
    main()
