"""The compile cache (tiledsl/cache.py): a hit gives back what a compile gives, in a new process
without importing the compiler; the key follows the source, the parameters, the kernel, the
target and tiledsl's code; writes are whole-or-nothing, and eight processes compiling one kernel
at once leave one entry and compile it once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tiledsl
from tiledsl import cache
from tiledsl.cli import main

ROOT = Path(__file__).resolve().parents[1]
SOFTMAX = ROOT / "examples" / "softmax.tdsl"
GEMM = ROOT / "examples" / "gemm.tdsl"


@pytest.fixture
def cache_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("TDSL_CACHE", "1")
    monkeypatch.setenv("TDSL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cache, "_MEMORY", {})
    return tmp_path


def _entry_dirs(root: Path) -> list[Path]:
    return [p for p in root.glob("compile/*/*") if p.is_dir()]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "TDSL_CACHE": "1", "TDSL_CACHE_DIR": str(tmp_path), **extra}


def _run(code: str, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("target", ["gfx942", "sm_90"])
def test_a_hit_in_a_new_process_gives_the_compiled_artifact_without_the_compiler(cache_on: Path,
                                                                                  target: str) -> None:
    fresh = tiledsl.load(SOFTMAX).compile(target=target)
    code = f"""
        import json, sys, tiledsl
        art = tiledsl.compiled({str(SOFTMAX)!r}, target={target!r})
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "lark", "llvmlite"))
        print(json.dumps({{"heavy": heavy, "asm": art.asm, "llvm": art.llvm_ir, "meta": art.meta,
                          "binary": art.binary.hex(), "params": [p.dtype for p in art.tensor_params]}}))
    """
    first = json.loads(_run(code, _env(cache_on)))        # a miss under compiled()'s own key: stored
    second = json.loads(_run(code, _env(cache_on)))
    assert second["heavy"] == []
    for got in (first, second):
        assert got["asm"] == fresh.asm and got["llvm"] == fresh.llvm_ir
        assert got["meta"] == json.loads(json.dumps(fresh.meta))
        assert bytes.fromhex(got["binary"]) == fresh.binary
        assert got["params"] == ["f32", "f32"]


def test_program_compile_reads_what_another_process_compiled(cache_on: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _run(f"import tiledsl; tiledsl.load({str(GEMM)!r}).compile(target='gfx942').binary", _env(cache_on))
    entries = cache.entries()
    assert len(entries) == 1 and entries[0][1]["kernel"] == "gemm"
    assert {p.name for p in _entry_dirs(cache_on)[0].iterdir()} >= {
        "kernel.ll", "kernel.s", "kernel.o", "meta.json", "kernel.hsaco"}
    from tiledsl import stages
    calls = []
    real = stages._run_chain
    monkeypatch.setattr(stages, "_run_chain", lambda *a: (a[1][-1].name == "llvm" and calls.append(a)) or real(*a))
    art = tiledsl.load(GEMM).compile(target="gfx942")
    assert calls == [] and art.resources.vgprs > 0 and art.name == "gemm"
    assert art.binary == (_entry_dirs(cache_on)[0] / "kernel.hsaco").read_bytes()


def test_the_key_follows_source_params_kernel_target_options_and_tiledsl_code(
        cache_on: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = SOFTMAX.read_text()
    base = cache.compile_key(text, None, {"BM": 16}, "sm_90", cache.program_options())
    assert base == cache.compile_key(text, None, {"BM": 16}, "sm_90", cache.program_options())
    others = [cache.compile_key(text + "\n", None, {"BM": 16}, "sm_90", cache.program_options()),
              cache.compile_key(text, "softmax", {"BM": 16}, "sm_90", cache.program_options()),
              cache.compile_key(text, None, {"BM": 32}, "sm_90", cache.program_options()),
              cache.compile_key(text, None, {"BM": 16.0}, "sm_90", cache.program_options()),
              cache.compile_key(text, None, {"BM": 16}, "sm_90a", cache.program_options()),
              cache.compile_key(text, None, {"BM": 16}, "sm_90", cache.program_options(opt=2))]
    monkeypatch.setattr(cache, "_FINGERPRINT", ["an edited compiler"])
    monkeypatch.setattr(cache, "_TOOLCHAIN", [])
    others.append(cache.compile_key(text, None, {"BM": 16}, "sm_90", cache.program_options()))
    assert len(set(others + [base])) == len(others) + 1


def test_different_params_and_kernels_get_different_code(cache_on: Path) -> None:
    a = tiledsl.compiled(SOFTMAX, target="sm_90", params={"BM": 16})
    b = tiledsl.compiled(SOFTMAX, target="sm_90", params={"BM": 32})
    assert a.asm != b.asm and a.params["BM"] == 16 and b.params["BM"] == 32
    split = ROOT / "tests" / "frontend" / "programs" / "split_rowsum.tdsl"
    names = [tiledsl.compiled(split, target="sm_90", kernel=k).name for k in ("partial", "combine")]
    assert names == ["partial", "combine"]
    assert len(cache.entries()) == 6          # each under compiled()'s key and Program.compile's


def test_off_switch_writes_nothing(cache_on: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TDSL_CACHE", "0")
    tiledsl.compiled(SOFTMAX, target="sm_90")
    tiledsl.load(SOFTMAX).compile(target="sm_90")
    assert not (cache_on / "compile").exists() and cache._MEMORY == {}


def test_program_compile_is_memoised_in_process(cache_on: Path) -> None:
    a = tiledsl.load(SOFTMAX).compile(target="sm_90")
    b = tiledsl.load(SOFTMAX).compile(target="sm_90")      # another Program of the same source
    assert a is b


def test_a_broken_entry_is_a_miss(cache_on: Path) -> None:
    tiledsl.compiled(SOFTMAX, target="sm_90")
    for meta in cache_on.glob("compile/*/*/meta.json"):
        meta.write_text("{not json")
    cache._MEMORY.clear()
    assert tiledsl.compiled(SOFTMAX, target="sm_90").asm == tiledsl.load(SOFTMAX).compile(target="sm_90").asm


def test_eight_processes_compiling_one_kernel_at_once(tmp_path: Path) -> None:
    # Each process counts the compiles it ran; the lock lets one compile and the others read it.
    code = f"""
        import tiledsl, tiledsl.stages as stages
        runs = []
        real = stages._run_chain
        stages._run_chain = lambda *a: (a[1][-1].name == "llvm" and runs.append(1)) or real(*a)
        art = tiledsl.load({str(GEMM)!r}).compile(target="gfx942")
        print(len(runs), art.binary.hex())
    """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_env(tmp_path), cwd=ROOT) for _ in range(8)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        outs.append(out.split())
    assert sum(int(n) for n, _ in outs) == 1
    assert len({binary for _, binary in outs}) == 1
    assert len(_entry_dirs(tmp_path)) == 1 and not list((tmp_path / "compile").glob("*/.*"))      # no temporary left
    assert bytes.fromhex(outs[0][1]) == tiledsl.load(GEMM).compile(target="gfx942").binary


def test_tdslc_cache_dir_list_clear(cache_on: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiledsl.load(SOFTMAX).compile(target="sm_90")
    assert main(["cache", "dir"]) == 0
    assert capsys.readouterr().out.strip() == str(cache_on)
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "softmax" in out and "sm_90" in out and "1 entries" in out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 entries" in capsys.readouterr().out
    assert cache.entries() == []


def test_parse_tables_from_the_cache_parse_and_report_alike(tmp_path: Path) -> None:
    # A syntax error's "expected ..." comes from the LALR tables: the same whether lark built
    # them (first process) or loaded them from the cache (second).
    code = f"""
        import tiledsl
        try:
            tiledsl.load("kernel k(X: f32[N]) grid (1) as (b) block 1 waves {{ x = X[b : +4] + }}")
        except tiledsl.TdslError as e:
            print(e.format())
        print(tiledsl.load({str(SOFTMAX)!r}).name)
    """
    first = _run(code, _env(tmp_path))
    assert (tmp_path / "grammar" / "tdsl.lark-tables").is_file()
    assert _run(code, _env(tmp_path)) == first and "expected" in first and first.endswith("softmax\n")


def test_the_cubin_is_made_once_and_kept_in_the_entry(cache_on: Path, tmp_path_factory: pytest.TempPathFactory,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in ptxas (the real one is on the GPU machine) that counts its runs.
    bin_dir = tmp_path_factory.mktemp("bin")
    calls = bin_dir / "calls"
    ptxas = bin_dir / "ptxas"
    ptxas.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        prev=""; for a in "$@"; do [ "$prev" = "-o" ] && out="$a"; prev="$a"; done
        echo "cubin $1" > "$out"; echo run >> {calls}
    """))
    ptxas.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(cache, "_TOOLCHAIN", [])       # this process looks for ptxas again
    art = tiledsl.load(SOFTMAX).compile(target="sm_90")
    assert art.image() == b"cubin -arch=sm_90\n" and art.image() == art.cubin()
    assert len(_entry_dirs(cache_on)) == 1 and (_entry_dirs(cache_on)[0] / "kernel.cubin").is_file()
    out = _run(f"import tiledsl; print(tiledsl.load({str(SOFTMAX)!r}).compile(target='sm_90').image())",
               _env(cache_on, PATH=os.environ["PATH"]))
    assert out.strip() == "b'cubin -arch=sm_90\\n'" and calls.read_text() == "run\n"
