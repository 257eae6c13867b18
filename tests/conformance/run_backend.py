#!/usr/bin/env python3
"""Runs ONNX's own backend test cases against the distilrt CLI.

Usage:
  run_backend.py --drt PATH [--filter REGEX] [--kind KIND]... [--jobs N] [--json OUT.json]
                 [--list-unsupported] [--classify-only] [--exclude FILE] [--timeout S]
                 [--run-excluded] [--keep-temp] [-v]

Cases come from the installed onnx package:
  - node               onnx.backend.test.loader.load_model_tests(kind="node") (models built in memory)
  - pytorch-operator,  on-disk cases under onnx/backend/test/data/<kind>/<test>/
    pytorch-converted, (model.onnx + test_data_set_*/input_N.pb, output_N.pb)
    simple
  - real               zoo models; only those whose url points into onnx/backend/test/data/light
                       are available offline; their inputs are generated the way onnx's backend
                       runner does it (arange / n, float32) and the reference output is
                       light/light_<model>_output_N.pb

Each case is classified from the model alone (no onnxruntime):
  unsupported  uses an op outside `drt ops`, a non-default domain, or a dtype (or a sequence /
               optional type) distilrt does not handle in its inputs/outputs/initializers/constants
  excluded     supported but matched by a line of exclude.txt (each line carries a reason)
  supported    must pass: `drt run model.onnx --input NAME=file.npy ... --output-dir DIR` must exit 0
               and DIR/<output name>.npy must match the reference (shape, dtype, values with the
               case's rtol/atol; integers and bools exactly; NaN positions must match)

The last line is `N passed, M failed, K skipped` (skipped = unsupported + excluded).
Exit status: 0 if no supported, non-excluded case failed, 1 otherwise, 2 on a usage error.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import compare  # noqa: E402  (tests/conformance/compare.py)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_EXCLUDE = os.path.join(HERE, "exclude.txt")

ON_DISK_KINDS = ("pytorch-operator", "pytorch-converted", "simple", "real")
LIGHT_URL_PREFIX = "onnx/backend/test/data/light/"

DEFAULT_DOMAINS = ("", "ai.onnx")

# ONNX element types distilrt handles (include/distilrt.h): every numeric type but complex.
# Graph inputs/outputs whose dtype numpy lacks (bfloat16, float8, int4, ...) travel as ONNX
# TensorProto files (`drt run --input NAME=FILE.pb`, `--output-format pb`).
SUPPORTED_ELEM_TYPES = {
    TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT8, TensorProto.UINT16,
    TensorProto.INT16, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL,
    TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.UINT32, TensorProto.UINT64,
    TensorProto.BFLOAT16,
} | {getattr(TensorProto, n) for n in (
    "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4",
    "FLOAT4E2M1", "FLOAT8E8M0", "UINT2", "INT2", "FLOAT6E2M3", "FLOAT6E3M2") if hasattr(TensorProto, n)}
NUMPY_IO_DTYPES = {
    np.dtype(t) for t in (np.float32, np.float16, np.float64, np.int8, np.int16, np.int32,
                          np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.bool_)
}
NPY_ELEM_TYPES = {
    TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT8, TensorProto.UINT16,
    TensorProto.INT16, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL,
    TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.UINT32, TensorProto.UINT64,
}

# `drt run` exit status meaning "valid model, but this op variant / dtype is not handled".
DRT_EXIT_UNSUPPORTED = 3

STDERR_CHARS = 200


def elem_type_name(t: int) -> str:
    try:
        return TensorProto.DataType.Name(t)
    except ValueError:
        return f"elem_type {t}"


# --------------------------------------------------------------------------------------------
# exclude.txt


class ExcludeError(Exception):
    pass


@dataclass
class ExcludeRule:
    pattern: str
    reason: str
    regex: re.Pattern
    line: int


def load_excludes(path: str) -> list[ExcludeRule]:
    """Lines: `test_name_or_regex  # reason`. Blank lines and lines starting with '#' are
    comments. A rule without a non-empty reason is an error."""
    rules: list[ExcludeRule] = []
    if not os.path.exists(path):
        return rules
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            pattern, sep, reason = line.partition("#")
            pattern, reason = pattern.strip(), reason.strip()
            if not sep or not reason:
                raise ExcludeError(f"{path}:{lineno}: entry {pattern!r} has no reason "
                                   "(expected `test_name_or_regex  # reason`)")
            if not pattern:
                raise ExcludeError(f"{path}:{lineno}: entry has a reason but no test name")
            try:
                regex = re.compile(pattern)
            except re.error as e:
                raise ExcludeError(f"{path}:{lineno}: bad regex {pattern!r}: {e}") from e
            rules.append(ExcludeRule(pattern, reason, regex, lineno))
    return rules


def match_exclude(rules: list[ExcludeRule], name: str) -> ExcludeRule | None:
    for r in rules:
        if r.pattern == name or r.regex.fullmatch(name):
            return r
    return None


# --------------------------------------------------------------------------------------------
# drt ops

OP_NAME_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*::)?[A-Za-z_][A-Za-z0-9_]*$")  # domain::op for other domains


def query_drt_ops(drt: str) -> set[str]:
    try:
        p = subprocess.run([drt, "ops"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"`{drt} ops` could not run: {e}") from e
    if p.returncode != 0:
        raise RuntimeError(f"`{drt} ops` exited {p.returncode}: {p.stderr.strip()[:STDERR_CHARS]}")
    ops = set()
    for line in p.stdout.splitlines():
        line = line.strip()
        if not line:
            continue
        if not OP_NAME_RE.match(line):
            raise RuntimeError(f"`{drt} ops` printed {line!r}, expected one ONNX op_type per line "
                               "(is the `ops` subcommand implemented?)")
        ops.add(line)
    if not ops:
        raise RuntimeError(f"`{drt} ops` printed no op types")
    return ops


# --------------------------------------------------------------------------------------------
# test cases


@dataclass
class Case:
    name: str
    kind: str
    rtol: float
    atol: float
    model: onnx.ModelProto | None = None  # loaded lazily for on-disk cases
    model_path: str | None = None  # on-disk model file
    model_dir: str | None = None  # dir holding test_data_set_* (on-disk cases)
    data_sets: Any = None  # in-memory [(inputs, outputs)] (node cases)
    light_prefix: str | None = None  # real cases: .../light/light_<model>
    load_error: str | None = None


@dataclass
class Result:
    name: str
    kind: str
    status: str  # passed | failed | unsupported | excluded
    reason: str = ""
    stderr: str = ""
    ops: list[str] = field(default_factory=list)
    missing_ops: list[str] = field(default_factory=list)
    seconds: float = 0.0
    xpass: bool = False  # excluded case that passed with --run-excluded


def collect_cases() -> list[Case]:
    from onnx.backend.test import loader

    cases: list[Case] = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        node_cases = loader.load_model_tests(kind="node")
    for tc in node_cases:
        if tc.model is not None:
            cases.append(Case(tc.name, "node", tc.rtol, tc.atol, model=tc.model,
                              data_sets=tc.data_sets))
        elif tc.model_dir is not None:  # older onnx releases shipped node tests on disk
            cases.append(Case(tc.name, "node", tc.rtol, tc.atol,
                              model_path=os.path.join(tc.model_dir, "model.onnx"),
                              model_dir=tc.model_dir))
    data_dir = loader.DATA_DIR
    available = set(os.listdir(data_dir)) if os.path.isdir(data_dir) else set()
    for kind in ON_DISK_KINDS:
        if kind not in available:
            continue
        for tc in sorted(loader.load_model_tests(kind=kind), key=lambda t: t.name):
            c = Case(tc.name, kind, tc.rtol, tc.atol)
            if tc.model_dir is not None:
                c.model_path = os.path.join(tc.model_dir, "model.onnx")
                c.model_dir = tc.model_dir
            elif tc.url and tc.url.startswith(LIGHT_URL_PREFIX):
                rel = tc.url[len(LIGHT_URL_PREFIX):]
                c.model_path = os.path.join(data_dir, "light", rel)
                c.light_prefix = os.path.splitext(c.model_path)[0]
            else:
                c.load_error = f"model only available by download ({tc.url})"
            cases.append(c)
    return cases


def load_model(case: Case) -> onnx.ModelProto:
    if case.model is None:
        case.model = onnx.load(case.model_path)
    return case.model


# --------------------------------------------------------------------------------------------
# classification


def iter_graphs(graph: onnx.GraphProto):
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from iter_graphs(g)


def type_problem(tp: onnx.TypeProto, what: str, io: bool) -> str | None:
    which = tp.WhichOneof("value")
    if which != "tensor_type":
        kind = {"sequence_type": "a sequence", "optional_type": "an optional", "map_type": "a map",
                "sparse_tensor_type": "a sparse tensor"}.get(which, "untyped")
        return f"{what} is {kind} (only dense tensors are handled)"
    et = tp.tensor_type.elem_type
    if et not in SUPPORTED_ELEM_TYPES:
        return f"{what} has dtype {elem_type_name(et)}"
    return None


def classify(model: onnx.ModelProto, supported_ops: set[str]) -> tuple[list[str], list[str], list[str]]:
    """Returns (all op types, missing op types, reasons); no reasons means supported."""
    reasons: list[str] = []
    ops: list[str] = []
    missing: list[str] = []
    seen = set()
    for g in iter_graphs(model.graph):
        for node in g.node:
            key = (node.domain, node.op_type)
            if key in seen:
                continue
            seen.add(key)
            label = node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}::{node.op_type}"
            ops.append(label)
            if node.domain not in DEFAULT_DOMAINS:
                if label not in supported_ops:  # `drt ops` lists other domains' ops as domain::op
                    reasons.append(f"domain {node.domain!r} (op {node.op_type})")
                    missing.append(label)
            elif node.op_type not in supported_ops:
                reasons.append(f"op {node.op_type} not in `drt ops`")
                missing.append(label)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    et = attr.t.data_type
                    if et not in SUPPORTED_ELEM_TYPES:
                        reasons.append(f"{node.op_type} attribute {attr.name} has dtype "
                                       f"{elem_type_name(et)}")
                elif attr.type in (onnx.AttributeProto.SPARSE_TENSOR, onnx.AttributeProto.TENSORS,
                                   onnx.AttributeProto.SPARSE_TENSORS):
                    reasons.append(f"{node.op_type} attribute {attr.name} is a "
                                   f"{onnx.AttributeProto.AttributeType.Name(attr.type)}")
    g = model.graph
    for vi in g.input:
        p = type_problem(vi.type, f"input {vi.name!r}", io=True)
        if p:
            reasons.append(p)
    for vi in g.output:
        p = type_problem(vi.type, f"output {vi.name!r}", io=True)
        if p:
            reasons.append(p)
    for t in g.initializer:
        if t.data_type not in SUPPORTED_ELEM_TYPES:
            reasons.append(f"initializer {t.name!r} has dtype {elem_type_name(t.data_type)}")
    if len(g.sparse_initializer):
        reasons.append("sparse initializers")
    # de-duplicate, keep order (bf16 reason repeated per input otherwise)
    reasons = list(dict.fromkeys(reasons))
    return ops, missing, reasons


# --------------------------------------------------------------------------------------------
# data


def to_array(x: Any) -> np.ndarray:
    if isinstance(x, TensorProto):
        return numpy_helper.to_array(x)
    if isinstance(x, (list, tuple, dict)) or x is None:
        raise TypeError(f"non-tensor value of type {type(x).__name__}")
    return np.asarray(x)


def read_tensor_pb(path: str) -> np.ndarray:
    t = TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def dummy_input(vi: onnx.ValueInfoProto) -> np.ndarray:
    """Same data as onnx's runner generate_dummy_data(random=False)."""
    if vi.type.tensor_type.elem_type != TensorProto.FLOAT:
        raise TypeError(f"input {vi.name!r}: dummy data is only generated for float inputs")
    shape = tuple(d.dim_value if d.HasField("dim_value") else 1
                  for d in vi.type.tensor_type.shape.dim)
    n = int(np.prod(shape))
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


def real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def load_data_sets(case: Case, model: onnx.ModelProto) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
    """Returns [(inputs, expected outputs)]; inputs follow the non-initializer graph inputs."""
    if case.data_sets is not None:
        return [([to_array(x) for x in ins], [to_array(y) for y in outs])
                for ins, outs in case.data_sets]
    if case.light_prefix is not None:
        ins = [dummy_input(vi) for vi in real_inputs(model)]
        outs = []
        for i in range(len(model.graph.output)):
            p = f"{case.light_prefix}_output_{i}.pb"
            if not os.path.exists(p):
                outs = None
                break
            outs.append(read_tensor_pb(p))
        if outs is None:
            from onnx.reference import ReferenceEvaluator  # noqa: PLC0415
            feeds = {vi.name: a for vi, a in zip(real_inputs(model), ins)}
            outs = [np.asarray(o) for o in ReferenceEvaluator(model).run(None, feeds)]
        return [(ins, outs)]
    sets = []
    for ds in sorted(glob.glob(os.path.join(case.model_dir, "test_data_set*"))):
        n_in = len(glob.glob(os.path.join(ds, "input_*.pb")))
        n_out = len(glob.glob(os.path.join(ds, "output_*.pb")))
        ins = [read_tensor_pb(os.path.join(ds, f"input_{i}.pb")) for i in range(n_in)]
        outs = [read_tensor_pb(os.path.join(ds, f"output_{i}.pb")) for i in range(n_out)]
        sets.append((ins, outs))
    return sets


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


# --------------------------------------------------------------------------------------------
# comparison


# compare(name, got, ref, rtol, atol) lives in tests/conformance/compare.py (numpy only)


# --------------------------------------------------------------------------------------------
# running one case


class Runner:
    def __init__(self, drt: str, timeout: float, keep: bool):
        self.drt = drt
        self.timeout = timeout
        self.keep = keep

    def run_case(self, case: Case, model: onnx.ModelProto, res: Result) -> Result:
        t0 = time.monotonic()
        tmp = tempfile.mkdtemp(prefix="drt_conf_")
        try:
            self._run(case, model, res, tmp, t0)
        except Exception as e:  # a harness problem on one case must not stop the run
            res.status, res.reason = "failed", f"harness error: {type(e).__name__}: {e}"
        finally:
            res.seconds = round(time.monotonic() - t0, 3)
            if not self.keep:
                shutil.rmtree(tmp, ignore_errors=True)
        return res

    def _run(self, case: Case, model: onnx.ModelProto, res: Result, tmp: str, t0: float) -> None:
        if case.model_path is not None:
            model_path = case.model_path
        else:
            model_path = os.path.join(tmp, "model.onnx")
            onnx.save(model, model_path)
        inputs = real_inputs(model)
        outputs = list(model.graph.output)
        data_sets = load_data_sets(case, model)
        if not data_sets:
            res.status, res.reason = "failed", "case has no test data set"
            return
        for ds_idx, (ins, refs) in enumerate(data_sets):
            if len(ins) > len(inputs):
                res.status, res.reason = "failed", (f"data set {ds_idx} has {len(ins)} inputs, "
                                                    f"model has {len(inputs)}")
                return
            if len(refs) != len(outputs):
                res.status, res.reason = "failed", (f"data set {ds_idx} has {len(refs)} outputs, "
                                                    f"model has {len(outputs)}")
                return
            ds_dir = os.path.join(tmp, f"set{ds_idx}")
            out_dir = os.path.join(ds_dir, "out")
            os.makedirs(out_dir)
            cmd = [self.drt, "run", model_path]
            # Inputs beyond the data set's count are optional inputs left unset (onnx's runner
            # feeds input_i.pb to graph input i and nothing to the rest).
            for i, (vi, arr) in enumerate(zip(inputs, ins)):
                if arr.dtype in NUMPY_IO_DTYPES:
                    path = os.path.join(ds_dir, f"input_{i}.npy")
                    np.save(path, arr, allow_pickle=False)
                else:  # bfloat16, float8, int4, ...: an ONNX TensorProto file
                    path = os.path.join(ds_dir, f"input_{i}.pb")
                    with open(path, "wb") as f:
                        f.write(numpy_helper.from_array(arr, vi.name).SerializeToString())
                cmd += ["--input", f"{vi.name}={path}"]
            out_ext = ".npy"
            if any(vi.type.tensor_type.elem_type not in NPY_ELEM_TYPES for vi in outputs):
                out_ext = ".pb"
                cmd += ["--output-format", "pb"]
            cmd += ["--output-dir", out_dir]
            left = self.timeout - (time.monotonic() - t0)
            if left <= 0:
                res.status, res.reason = "failed", f"timeout ({self.timeout:g} s)"
                return
            try:
                p = subprocess.run(cmd, capture_output=True, timeout=left, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired as e:
                res.status, res.reason = "failed", f"timeout ({self.timeout:g} s)"
                res.stderr = _text(e.stderr).replace(model_path, "MODEL")
                return
            res.stderr = _text(p.stderr).replace(model_path, "MODEL")
            if p.returncode == DRT_EXIT_UNSUPPORTED:
                res.status, res.reason = "failed", (f"drt exit {p.returncode} (unsupported variant "
                                                    "of a claimed op)")
                return
            if p.returncode != 0:
                res.status, res.reason = "failed", f"drt exit {p.returncode}"
                return
            for vi, ref in zip(outputs, refs):
                path = os.path.join(out_dir, safe_name(vi.name) + out_ext)
                if not os.path.exists(path):
                    res.status, res.reason = "failed", f"output {vi.name!r}: {os.path.basename(path)} not written"
                    return
                try:
                    got = np.load(path, allow_pickle=False) if out_ext == ".npy" else read_tensor_pb(path)
                except Exception as e:
                    res.status, res.reason = "failed", f"output {vi.name!r}: unreadable {out_ext}: {e}"
                    return
                err = compare(vi.name, got, ref, case.rtol, case.atol)
                if err:
                    if len(data_sets) > 1:
                        err = f"data set {ds_idx}: {err}"
                    res.status, res.reason = "failed", err
                    return
        res.status = "passed"


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    if isinstance(b, bytes):
        return b.decode("utf-8", "replace")
    return b


ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(s: str, n: int = STDERR_CHARS) -> str:
    return " ".join(ANSI_RE.sub("", s).split())[:n]


# --------------------------------------------------------------------------------------------
# main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drt", required=True, help="path of the drt executable")
    ap.add_argument("--filter", help="run only cases whose name matches this regex (re.search)")
    ap.add_argument("--kind", action="append",
                    help="restrict to a kind (node, pytorch-operator, pytorch-converted, simple, "
                         "real); repeatable")
    ap.add_argument("--jobs", type=int, default=2, help="parallel cases (default 2)")
    ap.add_argument("--json", help="write per-case results to this file")
    ap.add_argument("--list-unsupported", action="store_true",
                    help="print the op types that make cases unsupported, with counts")
    ap.add_argument("--exclude", default=DEFAULT_EXCLUDE, help="exclude list (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case (default 60)")
    ap.add_argument("--run-excluded", action="store_true",
                    help="also run excluded cases and report those that pass (stale entries)")
    ap.add_argument("--classify-only", action="store_true",
                    help="only classify cases (implies --list-unsupported); run nothing")
    ap.add_argument("--keep-temp", action="store_true", help="keep per-case temp dirs")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every case")
    args = ap.parse_args(argv)

    if args.jobs < 1:
        print("error: --jobs must be >= 1", file=sys.stderr)
        return 2
    try:
        excludes = load_excludes(args.exclude)
    except ExcludeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    drt = args.drt if os.sep in args.drt else (shutil.which(args.drt) or args.drt)
    drt = os.path.abspath(drt) if os.path.exists(drt) else drt
    try:
        supported_ops = query_drt_ops(drt)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    filt = re.compile(args.filter) if args.filter else None

    cases = collect_cases()
    if filt:
        cases = [c for c in cases if filt.search(c.name)]
    if args.kind:
        cases = [c for c in cases if c.kind in args.kind]
    if not cases:
        print("error: no test case selected", file=sys.stderr)
        return 2

    results: list[Result] = []
    todo: list[tuple[Case, onnx.ModelProto, Result]] = []
    used_rules = set()
    for c in cases:
        res = Result(c.name, c.kind, "unsupported")
        if c.load_error:
            res.reason = c.load_error
            results.append(res)
            continue
        try:
            model = load_model(c)
        except Exception as e:
            res.status, res.reason = "failed", f"cannot load model: {e}"
            results.append(res)
            continue
        res.ops, res.missing_ops, reasons = classify(model, supported_ops)
        if reasons:
            res.reason = "; ".join(reasons)
            results.append(res)
            continue
        rule = match_exclude(excludes, c.name)
        if rule:
            used_rules.add(rule.line)
            res.status, res.reason = "excluded", rule.reason
            if not args.run_excluded:
                results.append(res)
                continue
        else:
            res.status = "supported"
        todo.append((c, model, res))

    if args.classify_only:
        args.list_unsupported = True
        for _, _, res in todo:
            res.status = "not run" if res.status == "supported" else res.status
            results.append(res)
        todo = []

    runner = Runner(drt, args.timeout, args.keep_temp)
    lock = threading.Lock()
    total = len(todo)
    done = [0]

    def work(item):
        c, model, res = item
        excluded = res.status == "excluded"
        excl_reason = res.reason
        runner.run_case(c, model, res)
        if excluded:
            res.xpass = res.status == "passed"
            res.status, res.reason = "excluded", excl_reason
        with lock:
            done[0] += 1
            if args.verbose:
                tag = res.status.upper() + (" (XPASS)" if res.xpass else "")
                extra = f": {res.reason}" if res.status == "failed" else ""
                print(f"[{done[0]}/{total}] {tag} {res.name} ({res.seconds:.2f}s){extra}",
                      flush=True)
        return res

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        results.extend(ex.map(work, todo))

    results.sort(key=lambda r: (r.kind != "node", r.kind, r.name))
    by_status = collections.Counter(r.status for r in results)

    if args.verbose:
        for r in results:
            if r.status in ("unsupported", "excluded"):
                print(f"{r.status.upper()} {r.name}: {r.reason}")

    failures = [r for r in results if r.status == "failed"]
    for r in failures:
        line = f"FAIL {r.name} [{r.kind}]: {r.reason}"
        if r.stderr.strip():
            line += f" | stderr: {one_line(r.stderr)}"
        print(line)
    xpasses = [r for r in results if r.xpass]
    for r in xpasses:
        print(f"XPASS {r.name} [{r.kind}]: passes but is excluded ({r.reason})")
    if args.run_excluded:
        stale = [rule for rule in excludes if rule.line not in used_rules]
        for rule in stale:
            print(f"note: exclude line {rule.line} ({rule.pattern!r}) matched no supported case")

    if args.list_unsupported:
        blocking = collections.Counter()
        sole = collections.Counter()
        other = collections.Counter()
        for r in results:
            if r.status != "unsupported":
                continue
            for op in r.missing_ops:
                blocking[op] += 1
            if len(r.missing_ops) == 1 and all(
                    ("`drt ops`" in x or "domain" in x or "control-flow" in x)
                    for x in r.reason.split("; ")):
                sole[r.missing_ops[0]] += 1
            for x in r.reason.split("; "):
                if not ("`drt ops`" in x or "domain" in x or "control-flow" in x):
                    other[re.sub(r"^(input|output|initializer) '[^']*' (has )?", "", x)] += 1
        print("op types in unsupported cases (cases using it / cases it alone blocks):")
        for op, n in sorted(blocking.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {op:32s} {n:5d} {sole[op]:5d}")
        if other:
            print("other reasons for unsupported cases:")
            for reason, n in other.most_common():
                print(f"  {n:5d}  {reason}")

    kinds = sorted({r.kind for r in results}, key=lambda k: (k != "node", k))
    print("per kind:")
    for k in kinds:
        cnt = collections.Counter(r.status for r in results if r.kind == k)
        print(f"  {k:18s} {cnt['passed']:5d} passed, {cnt['failed']:5d} failed, "
              f"{cnt['unsupported']:5d} unsupported, {cnt['excluded']:5d} excluded"
              + (f", {cnt['not run']:5d} not run" if args.classify_only else ""))

    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({
                "drt": drt,
                "supported_ops": sorted(supported_ops),
                "counts": dict(by_status),
                "cases": [r.__dict__ for r in results],
            }, f, indent=1)

    n_pass, n_fail = by_status["passed"], by_status["failed"]
    n_uns, n_exc = by_status["unsupported"], by_status["excluded"]
    if args.classify_only:
        print(f"{by_status['not run']} supported (not run), {n_uns} unsupported, {n_exc} excluded")
        return 0
    print(f"{n_uns} unsupported, {n_exc} excluded")
    print(f"{n_pass} passed, {n_fail} failed, {n_uns + n_exc} skipped")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
