#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Dependency order of kernel modules, without depmod or modinfo on the host.

    modorder.py MODULES_DIR NAME...

MODULES_DIR is an unpacked lib/modules/<version> (Debian's package ships no
modules.dep: depmod makes it at install time). Prints, one a line and each
module after everything it needs, modules.dep lines for the named modules and
their dependencies: "kernel/x/a.ko.xz: kernel/y/b.ko.xz ...". Names built into
the kernel (modules.builtin) are skipped; unknown names are reported on stderr.
"""
import lzma
import os
import sys

MODULE_SUFFIXES = (".ko.xz", ".ko.zst", ".ko.gz", ".ko")


def canonical(name):
    return name.replace("-", "_")


def module_name(path):
    base = os.path.basename(path)
    for suffix in MODULE_SUFFIXES:
        if base.endswith(suffix):
            return canonical(base[: -len(suffix)])
    return None


def index_modules(moddir):
    """Maps each module name to its path relative to moddir."""
    paths = {}
    for root, _, files in os.walk(os.path.join(moddir, "kernel")):
        for f in files:
            name = module_name(f)
            if name:
                paths[name] = os.path.relpath(os.path.join(root, f), moddir)
    return paths


def builtin_names(moddir):
    try:
        with open(os.path.join(moddir, "modules.builtin")) as f:
            return {module_name(line.strip()) for line in f if line.strip()}
    except FileNotFoundError:
        return set()


def read_module(path):
    if path.endswith(".xz"):
        return lzma.open(path).read()
    if path.endswith(".ko"):
        with open(path, "rb") as f:
            return f.read()
    sys.exit(f"modorder.py: cannot read {path}: only .ko and .ko.xz are handled")


def modinfo(path):
    """Returns (depends, softdep_pre, softdep_post) from the .modinfo strings.

    .modinfo is a run of NUL-terminated key=value strings; the keys below
    occur nowhere else in a module, so scanning the whole file is enough.
    """
    data = read_module(path)
    depends, pre, post = [], [], []
    for entry in data.split(b"\0"):
        if entry.startswith(b"depends="):
            depends += [canonical(d) for d in entry[8:].decode().split(",") if d]
        elif entry.startswith(b"softdep="):
            target = None
            for word in entry[8:].decode().split():
                if word in ("pre:", "post:"):
                    target = pre if word == "pre:" else post
                elif target is not None:
                    target.append(canonical(word))
    return depends, pre, post


class Resolver:
    def __init__(self, moddir):
        self.moddir = moddir
        self.paths = index_modules(moddir)
        self.builtin = builtin_names(moddir)
        self.deps = {}  # name -> direct hard dependencies
        self.order = []

    def softdep_module(self, name):
        """A softdep may name a crypto alias: "crypto-crc32c" is provided by a
        module called crc32c or crc32c_generic (MODULE_ALIAS_CRYPTO)."""
        algo = name[len("crypto_"):] if name.startswith("crypto_") else name
        for candidate in (name, algo, algo + "_generic"):
            if candidate in self.paths or candidate in self.builtin:
                return candidate
        return name

    def visit(self, name, optional=False):
        if optional:
            name = self.softdep_module(name)
        if name in self.deps or name in self.builtin:
            return
        if name not in self.paths:
            # softdeps name aliases too (crc32c); only hard misses matter
            what = "softdep" if optional else "module"
            print(f"modorder.py: {what} {name} not in this kernel, skipped", file=sys.stderr)
            return
        depends, pre, post = modinfo(os.path.join(self.moddir, self.paths[name]))
        self.deps[name] = depends
        for d in pre:
            self.visit(d, optional=True)
        for d in depends:
            self.visit(d)
        self.order.append(name)
        for d in post:
            self.visit(d, optional=True)

    def closure(self, name):
        """All hard dependencies of name, the last to be loaded first."""
        seen = []
        stack = list(self.deps.get(name, []))
        while stack:
            d = stack.pop()
            if d in seen or d not in self.deps:
                continue
            seen.append(d)
            stack.extend(self.deps[d])
        return sorted(seen, key=self.order.index, reverse=True)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    resolver = Resolver(argv[1])
    for name in argv[2:]:
        name = canonical(name)
        if name in resolver.builtin:
            print(f"modorder.py: {name} is built into the kernel", file=sys.stderr)
        resolver.visit(name)
    for name in resolver.order:
        deps = " ".join(resolver.paths[d] for d in resolver.closure(name))
        print(f"{resolver.paths[name]}: {deps}".rstrip())


if __name__ == "__main__":
    main(sys.argv)
