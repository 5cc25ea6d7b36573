"""The compile cache: every compiled kernel kept on disk, so that a new process does not compile again.

    art = tiledsl.compiled("examples/attention.tdsl", target="sm_90a", params={"D": 128})
    art.launcher()(Q=q, K=k, V=v, O=o, scale=0.088)

An entry is keyed by a hash of what decides the native code: the source text (the whole file; the
language has no includes), the kernel's name, the compile-time parameters, the target, the
options of the compile (LLVM -O level, tile passes, op budget), tiledsl's own code (a hash of its
``.py`` and ``.lark`` files, so an edited compiler never serves an old entry) and the toolchain:
the llvmlite library that holds LLVM, and the ``ptxas`` and ``ld.lld`` found (path, size and
modification time of each file). An entry is a directory holding the optimised LLVM IR, the
assembly (AMDGPU ``.s`` or PTX), the AMDGPU relocatable object, the launch metadata and, once made,
the linked ``.hsaco`` or the cubin (ptxas runs when a launcher or ``--emit cubin`` first asks).

Where: ``$TDSL_CACHE_DIR`` (default ``~/.cache/tiledsl``), under ``compile/``. ``TDSL_CACHE=0`` turns
the cache off (the disk and the in-process memo; each Program still keeps its own stage results).
``tdslc cache dir|list|clear`` shows and empties it.

Concurrency: an entry is written in a temporary directory and renamed into place, so a reader
sees a whole entry or none, and files added later (cubin, hsaco) are renamed into the entry. A
lock file per key (``filelock``: fcntl/msvcrt locks, released by the OS when a process dies)
lets one process compile while the others that want the same kernel wait and then read its
entry: without it eight processes starting together on a two-core machine would each spend
five seconds compiling the same attention kernel. The lock is for work, not for correctness.

A hit (:func:`compiled`) imports nothing of the compiler: it hashes the source and parameters,
reads the metadata and returns an :class:`~tiledsl.compile.Artifact` whose texts and binaries are
read from the entry when asked.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tiledsl.compile import Artifact, KernelArgInfo

#: The environment variables: where the cache is, and the off switch (``TDSL_CACHE=0``).
ENV_DIR, ENV_SWITCH = "TDSL_CACHE_DIR", "TDSL_CACHE"
#: Bumped when what an entry holds changes: older entries are then never read.
FORMAT = 1
#: Seconds a process waits for another one compiling the same kernel before compiling itself.
LOCK_TIMEOUT_S = 900.0

_ASM, _LLVM, _OBJ, _META = "kernel.s", "kernel.ll", "kernel.o", "meta.json"
_CUBIN, _HSACO = "kernel.cubin", "kernel.hsaco"

#: Artifacts of this process by key: ``Program.compile`` of the same source twice compiles once.
_MEMORY: dict[str, Artifact] = {}
_FINGERPRINT: list[str] = []


def enabled() -> bool:
    """Whether the cache is on (``TDSL_CACHE`` is not 0/off/false/no)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "off", "false", "no")


def cache_dir() -> Path:
    """The cache's root: ``$TDSL_CACHE_DIR``, else ``~/.cache/tiledsl``."""
    return Path(os.environ.get(ENV_DIR) or Path.home() / ".cache" / "tiledsl")


def compile_dir() -> Path:
    return cache_dir() / "compile"


# ------------------------------------------------------------------------------------------ keys

def code_fingerprint() -> str:
    """A hash of tiledsl's own code (every ``.py`` and ``.lark`` file of the package): about 2 ms,
    computed once per process."""
    if not _FINGERPRINT:
        root = Path(__file__).parent
        h = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".lark")):
            h.update(str(path.relative_to(root)).encode() + b"\0")
            h.update(path.read_bytes())
        _FINGERPRINT.append(h.hexdigest())
    return _FINGERPRINT[0]


def _file_identity(path: str | None) -> str:
    """``path:size:mtime`` of a tool or library: changes when it is upgraded or replaced."""
    if path is None:
        return "none"
    try:
        st = os.stat(path)
    except OSError:
        return "none"
    return f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}"


_VERSIONED_LLD = re.compile(r"^ld\.lld-(\d+)$")


def _linker_path() -> str | None:
    """The ld.lld that ``tiledsl.backend_amdgpu.codeobject.find_linker`` picks (``ld.lld``, else the
    highest ``ld.lld-NN`` on PATH), found without importing the backend."""
    plain = shutil.which("ld.lld")
    if plain:
        return plain
    best: tuple[int, str] | None = None
    for directory in filter(None, os.environ.get("PATH", "").split(os.pathsep)):
        with contextlib.suppress(OSError):
            for name in os.listdir(directory):
                m = _VERSIONED_LLD.match(name)
                full = os.path.join(directory, name)
                if m and os.access(full, os.X_OK) and (best is None or int(m[1]) > best[0]):
                    best = (int(m[1]), full)
    return best[1] if best else None


_TOOLCHAIN: list[dict[str, str]] = []


def toolchain() -> dict[str, str]:
    """What besides the source decides the output: tiledsl's code, the LLVM library inside
    llvmlite (its file identifies llvmlite's build and so its LLVM), ptxas and ld.lld. Looked up
    once per process (a few milliseconds: the linker search lists the PATH directories)."""
    if not _TOOLCHAIN:
        _TOOLCHAIN.append(_find_toolchain())
    return _TOOLCHAIN[0]


def _find_toolchain() -> dict[str, str]:
    import tiledsl
    spec = importlib.util.find_spec("llvmlite")
    lib = None
    if spec is not None and spec.submodule_search_locations:
        found = sorted(Path(spec.submodule_search_locations[0], "binding").glob("libllvmlite*"))
        lib = str(found[0]) if found else None
    return {"tiledsl": f"{tiledsl.__version__}+{code_fingerprint()}", "llvmlite": _file_identity(lib),
            "ptxas": _file_identity(shutil.which("ptxas")), "ld.lld": _file_identity(_linker_path())}


def compile_key(text: str, kernel: str | None, params: Mapping[str, Any], target: str,
                options: Mapping[str, Any]) -> str:
    """The key of a compile: ``kernel`` None for the one kernel of a file; ``options`` the compile
    options that change the code (LLVM level, tile passes, op budget)."""
    doc = {"format": FORMAT, "source": hashlib.sha256(text.encode()).hexdigest(), "kernel": kernel,
           "params": {k: [type(v).__name__, v] for k, v in sorted(params.items())}, "target": target,
           "options": dict(options), "toolchain": toolchain()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:40]


def _entry(key: str) -> Path:
    return compile_dir() / key[:2] / key


# ------------------------------------------------------------------------------------------ entries

class StoredModule:
    """The compiled module of a cache entry: texts and binaries read from the entry when first
    asked; a cubin or hsaco made on demand is written into the entry. Anything else (AMDGPU
    ``resources()``, ``metadata()``) is asked of the target's own compiled module, rebuilt from
    the stored texts."""

    def __init__(self, entry: Path, meta: dict[str, Any], loaded: dict[str, bytes] | None = None) -> None:
        self.entry = entry
        self.target = meta["target"]
        self.backend = meta["backend"]
        self.dynamic_lds_bytes = meta["dynamic_lds_bytes"]
        self._loaded = dict(loaded or {})
        self._module: Any = None

    def _read(self, name: str) -> bytes:
        if name not in self._loaded:
            self._loaded[name] = (self.entry / name).read_bytes()
        return self._loaded[name]

    @property
    def llvm_ir(self) -> str:
        return self._read(_LLVM).decode()

    @property
    def asm(self) -> str:
        return self._read(_ASM).decode()

    @property
    def ptx(self) -> str:
        return self.asm

    @property
    def object(self) -> bytes:
        return self._read(_OBJ) if self.backend == "amdgpu" else self._read(_ASM)

    def link(self, linker: str | None = None) -> bytes:
        return self._made(_HSACO, lambda: self._compiled().link(linker))

    def cubin(self, ptxas: str | None = None) -> bytes:
        return self._made(_CUBIN, lambda: self._compiled().cubin(ptxas))

    def _made(self, name: str, make: Any) -> bytes:
        if name not in self._loaded:
            path = self.entry / name
            if path.is_file():
                self._loaded[name] = path.read_bytes()
            else:
                self._loaded[name] = make()
                _write_into(self.entry, name, self._loaded[name])
        return self._loaded[name]

    def _compiled(self) -> Any:
        """The backend's CompiledModule for these texts (imports the backend)."""
        if self._module is None:
            from tiledsl.stages import backend_for
            from tiledsl.targets import get_target
            base, fma = self.target.removesuffix("-fma"), self.target.endswith("-fma")
            record = get_target(base).without_matrix() if fma else get_target(base)
            self._module = backend_for(record)._package(llvm_ir=self.llvm_ir, asm=self.asm, obj=self.object,
                                                        dynamic_lds_bytes=self.dynamic_lds_bytes)
        return self._module

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._compiled(), name)


def _write_into(entry: Path, name: str, data: bytes) -> None:
    """Add a file to an entry atomically (a reader sees it whole or not at all); an entry that
    vanished (``tdslc cache clear``) is not recreated."""
    if not entry.is_dir():
        return
    fd, tmp = tempfile.mkstemp(dir=entry, prefix=f".{name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, entry / name)


def _describe(art: Artifact) -> dict[str, Any]:
    """The metadata of an entry: what :func:`_restore` needs to rebuild the Artifact."""
    return {"format": FORMAT, "kernel": art.name, "target": art.target, "backend": art.backend,
            "args": [vars(a) for a in art.args], "block_threads": art.block_threads, "lds_bytes": art.lds_bytes,
            "grid": art.grid, "params": art.params, "dynamic_lds_bytes": art.compiled.dynamic_lds_bytes,
            "tensor_params": [{"name": p.name, "dtype": p.dtype, "dims": list(p.dims), "out": p.out}
                              for p in art.tensor_params]}


def _restore(entry: Path, meta: dict[str, Any], loaded: dict[str, bytes] | None = None) -> Artifact:
    from tiledsl.frontend.ast import TensorParam
    tensors = [TensorParam(None, p["name"], p["dtype"], p["dims"], p["out"]) for p in meta["tensor_params"]]
    return Artifact(meta["target"], meta["kernel"], StoredModule(entry, meta, loaded),
                    [KernelArgInfo(**a) for a in meta["args"]], meta["block_threads"], meta["lds_bytes"],
                    meta["grid"], meta["params"], tensor_params=tensors, backend=meta["backend"])


def lookup(key: str) -> Artifact | None:
    """The artifact of ``key``: from this process's memo, else from the disk; None on a miss."""
    if key in _MEMORY:
        return _MEMORY[key]
    entry = _entry(key)
    try:
        meta = json.loads((entry / _META).read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != FORMAT:
        return None
    art = _MEMORY[key] = _restore(entry, meta)
    return art


def store(key: str, art: Artifact) -> Artifact:
    """Write ``art`` as the entry of ``key`` (unless another process did first) and remember it;
    returns the artifact to use, whose cubin/hsaco, once made, go into the entry."""
    entry = _entry(key)
    files = {_LLVM: art.llvm_ir.encode(), _ASM: art.asm.encode()}
    if art.is_amd:
        files[_OBJ] = art.object
    meta = _describe(art)
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{key}."))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        (tmp / _META).write_text(json.dumps(meta, indent=1) + "\n")   # last: an entry with meta is whole
        try:
            os.rename(tmp, entry)
        except OSError:          # another process renamed its entry first: keep that one
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    art.compiled = StoredModule(entry, meta, files)
    _MEMORY[key] = art
    return art


@contextlib.contextmanager
def compiling(key: str) -> Iterator[None]:
    """Hold the key's lock while compiling it: other processes wanting the same entry wait, then
    find it (see the module docstring). A lock that cannot be had in time is done without."""
    from filelock import FileLock, Timeout
    path = _entry(key).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=LOCK_TIMEOUT_S)
    except Timeout:
        yield
        return
    try:
        yield
    finally:
        lock.release()


# ------------------------------------------------------------------------------------------ API

def compiled(path_or_source: str | os.PathLike, target: str = "sm_90",
             params: Mapping[str, int | float | str] | None = None, kernel: str | None = None) -> Artifact:
    """``tiledsl.load(path_or_source, params, kernel).compile(target)``, answered from the compile
    cache without loading the program when this source was compiled with these parameters
    before (by this function or by ``Program.compile``)."""
    params = dict(params or {})
    text = _source_text(path_or_source)
    key = None
    if enabled() and text is not None:
        key = compile_key(text, kernel, params, target, program_options())
        hit = lookup(key)
        if hit is not None:
            return hit
    from tiledsl.program import load
    art = load(path_or_source, params, kernel).compile(target=target)
    if key is not None and key not in _MEMORY:      # also under this key: the next call is a hit
        with contextlib.suppress(OSError):
            store(key, art)
    return art


def program_options(opt: int = 3, passes: tuple[str, ...] | None = None, max_ops: int | None = None
                    ) -> dict[str, Any]:
    """The options part of a key: LLVM's level, the tile passes (None: the default ones) and
    the op budget (None: the default one)."""
    return {"opt": opt, "passes": list(passes) if passes is not None else None, "max_ops": max_ops}


def program_key(program: Any, record: Any, options: Any) -> str | None:
    """The key of compiling ``program`` for the target ``record`` with ``tiledsl.stages.Options``;
    None when the cache is off or the record is not one of ``tiledsl.targets`` (a record made
    by hand has no name that identifies it)."""
    from tiledsl.stages import Options
    from tiledsl.targets import TARGETS
    if not enabled():
        return None
    base = TARGETS.get(record.name.removesuffix("-fma"))
    if base is None or record not in (base, base.without_matrix()):
        return None
    max_ops = None if options.max_ops == Options().max_ops else options.max_ops
    return compile_key(program.source.text, program.name, program.params, record.name,
                       program_options(options.opt, options.tile_passes, max_ops))


def compile_once(key: str, compile: Callable[[], tuple[Artifact, Any]]) -> tuple[Artifact, Any]:
    """The artifact of ``key`` from the cache, else ``compile()``'s (under the key's lock, then
    stored); with ``compile``'s second value, or None on a hit."""
    hit = lookup(key)
    if hit is not None:
        return hit, None
    try:
        lock = compiling(key)
        lock.__enter__()
    except OSError:          # no cache directory to be had (read-only home ...): compile uncached
        return compile()
    try:
        hit = lookup(key)    # another process may have compiled it while this one waited
        if hit is not None:
            return hit, None
        art, extra = compile()
        with contextlib.suppress(OSError):
            art = store(key, art)
        return art, extra
    finally:
        lock.__exit__(None, None, None)


def _source_text(path_or_source: str | os.PathLike) -> str | None:
    """The source text as ``tiledsl.load`` reads it; None when it cannot be read as UTF-8 here
    (``load`` then reports why)."""
    try:
        if isinstance(path_or_source, os.PathLike):
            return Path(path_or_source).read_bytes().decode()
        s = str(path_or_source)
        if "\n" not in s and "{" not in s:
            return Path(s).read_bytes().decode()
        return s
    except (OSError, UnicodeDecodeError):
        return None


def grammar_cache(name: str) -> str | bool:
    """Where lark keeps the parse tables of grammar ``name`` (its ``cache=`` option: building the
    LALR tables of the language's grammar takes 0.1-0.5 s of every process, loading them 20 ms);
    False when the cache is off. Lark checks the grammar's hash and its own version on loading,
    and rebuilds (and rewrites) a table it cannot read."""
    if not enabled():
        return False
    directory = cache_dir() / "grammar"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return str(directory / f"{name}.lark-tables")


# ------------------------------------------------------------------------------------------ upkeep

def entries() -> list[tuple[str, dict[str, Any], int]]:
    """(key, metadata, bytes on disk) of every whole entry."""
    out = []
    for meta_path in sorted(compile_dir().glob(f"*/*/{_META}")):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        size = sum(f.stat().st_size for f in meta_path.parent.iterdir() if f.is_file())
        out.append((meta_path.parent.name, meta, size))
    return out


def clear() -> int:
    """Remove every entry (and this process's memo); the number of entries removed."""
    n = len(entries())
    _MEMORY.clear()
    shutil.rmtree(compile_dir(), ignore_errors=True)
    return n
