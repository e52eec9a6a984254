#!/usr/bin/env python3
"""Check that every public header compiles on its own, as C99 and as C++11.

Each header gets a translation unit that includes it (twice, to exercise the
include guard) and nothing else. The compile's dependency list is also
checked: a public header must never pull in a dependency's header.

usage: header-test.py --cc WORD [--cc WORD...] [--cxx WORD...]
                      --src-include DIR --build-include DIR HEADER...

HEADER arguments are the headers the build installs. Any other *.h found in
the include folders is a failure too, since it would not be installed.
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile

C_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
CXX_FLAGS = ["-std=c++11", "-Wall", "-Wextra", "-Werror"]

# Headers of lamina's dependencies; a public header must include none of them.
FORBIDDEN = ("/uuid/", "/xxhash.h", "/xxh3.h", "/fuse/", "/fuse3/", "/fuse.h",
             "/curl/", "/archive.h", "/archive_entry.h", "/openssl/",
             "/check.h")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cc", action="append", default=[])
    ap.add_argument("--cxx", action="append", default=[])
    ap.add_argument("--src-include", required=True)
    ap.add_argument("--build-include", required=True)
    ap.add_argument("headers", nargs="+")
    args = ap.parse_args()

    roots = [os.path.realpath(args.src_include),
             os.path.realpath(args.build_include)]
    listed = {os.path.realpath(h) for h in args.headers}
    found = set()
    for root in roots:
        found.update(os.path.realpath(p)
                     for p in glob.glob(os.path.join(root, "*.h")))
        found.update(os.path.realpath(p)
                     for p in glob.glob(os.path.join(root, "lamina", "*.h")))

    failures = []
    for path in sorted(found - listed):
        # Generated headers (version.h) live in the build tree and are
        # installed separately, so only source-tree strays are suspicious.
        if path.startswith(roots[0] + os.sep):
            failures.append(f"{path}: not in lamina_public_headers "
                            "(it would not be installed)")

    headers = sorted(listed | found)
    compilers = [("C99", args.cc, C_FLAGS, ".c")]
    if args.cxx:
        compilers.append(("C++11", args.cxx, CXX_FLAGS, ".cpp"))
    else:
        print("note: no C++ compiler found; skipping the C++ pass")

    include_flags = [f"-I{r}" for r in roots]
    with tempfile.TemporaryDirectory(prefix="lamina-headers-") as tmp:
        for header in headers:
            name = include_name(header, roots)
            if name is None:
                failures.append(f"{header}: not under an include folder")
                continue
            for lang, cmd, flags, ext in compilers:
                err = compile_one(tmp, name, cmd, flags + include_flags, ext)
                status = "ok" if err is None else "FAIL"
                print(f"{status:4} {lang:5} <{name}>")
                if err is not None:
                    failures.append(f"<{name}> as {lang}:\n{err}")

    if failures:
        print(f"\n{len(failures)} header problem(s):", file=sys.stderr)
        for f in failures:
            print(f"- {f}", file=sys.stderr)
        return 1
    return 0


def include_name(header, roots):
    for root in roots:
        if header.startswith(root + os.sep):
            return os.path.relpath(header, root)
    return None


def compile_one(tmp, name, cmd, flags, ext):
    base = os.path.join(tmp, name.replace("/", "_").replace(".", "_"))
    src = base + ext
    with open(src, "w", encoding="utf-8") as f:
        f.write(f"#include <{name}>\n#include <{name}>\n\n"
                "int main(void)\n{\n\treturn 0;\n}\n")
    dep = base + ext + ".d"
    argv = cmd + flags + ["-MD", "-MF", dep, "-c", src,
                          "-o", base + ext + ".o"]
    proc = subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        return " ".join(argv) + "\n" + proc.stdout
    with open(dep, encoding="utf-8") as f:
        deps = f.read().replace("\\\n", " ").split()
    # lamina's own <lamina/archive.h> is not libarchive's <archive.h>.
    bad = [d for d in deps[1:] if any(p in d for p in FORBIDDEN)
           and "/lamina/" not in d]
    if bad:
        return "includes a dependency's header: " + ", ".join(bad)
    return None


if __name__ == "__main__":
    sys.exit(main())
