#!/usr/bin/env python3
"""Run the model fixtures (tests/models/fixtures, made by gen_fixtures.py) through `drt run`.

For every fixture and each of its data sets (inputs/ -> expected/, and for dynamic-batch
fixtures inputs_b2/ -> expected_b2/) this runs

    drt run model.onnx --input NAME=inputs/NAME.npy ... --output-dir TMPDIR

loads TMPDIR/<output>.npy, checks shape, dtype and NaN/Inf, then the relative L2 error
||out - expected|| / ||expected|| against the fixture's tolerance (meta.json, 1e-4).
Prints one line per fixture data set and a final line `N passed, M failed`; exits 1 if
anything failed (a missing or empty fixtures directory counts as a failure), 0 otherwise.
Needs only numpy.

Usage: python3 tests/models/run_models.py --drt build/bin/drt [--filter REGEX]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
EXIT_NAMES = {1: "usage", 2: "bad input", 3: "unsupported", 4: "internal"}


def safe_name(name):
    """File name `drt run --output-dir` uses for a graph output."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def rel_l2(out, ref):
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    d = float(np.linalg.norm(out - ref))
    n = float(np.linalg.norm(ref))
    return d / n if n > 0 else d


def last_line(text, limit=200):
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    return lines[-1][:limit] if lines else ""


def compare(name, out_path, ref, tol):
    """Returns (error or None, failure reason or None)."""
    if not os.path.isfile(out_path):
        return None, "output %s not written (%s)" % (name, os.path.basename(out_path))
    try:
        out = np.load(out_path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a failure
        return None, "output %s unreadable: %s" % (name, e)
    if out.shape != ref.shape:
        return None, "output %s shape %s, expected %s" % (name, list(out.shape), list(ref.shape))
    if out.dtype != ref.dtype:
        return None, "output %s dtype %s, expected %s" % (name, out.dtype, ref.dtype)
    if out.dtype.kind in "fc":
        bad = int(np.count_nonzero(~np.isfinite(out)))
        if bad:  # references are all finite (gen_fixtures.py checks)
            return None, "output %s has %d NaN/Inf values" % (name, bad)
        err = rel_l2(out, ref)
        if not err <= tol:
            return err, "output %s rel L2 %.3g > tol %.1g" % (name, err, tol)
        return err, None
    if not np.array_equal(out, ref):
        return 1.0, "output %s differs (%d of %d elements)" % (
            name, int(np.count_nonzero(out != ref)), out.size)
    return 0.0, None


def run_case(drt, fdir, meta, data_set, tol, timeout, keep, verbose):
    """Runs one data set of one fixture. Returns (error, ms, failure reason or None)."""
    in_dir = os.path.join(fdir, data_set["inputs"])
    exp_dir = os.path.join(fdir, data_set["expected"])
    tmp = tempfile.mkdtemp(prefix="drt_models_")
    try:
        cmd = [drt, "run", os.path.join(fdir, "model.onnx"), "--no-specialize"]
        for inp in meta["inputs"]:
            path = os.path.join(in_dir, inp.get("file") or safe_name(inp["name"]) + ".npy")
            if not os.path.isfile(path):
                return None, 0.0, "fixture is missing input file %s" % path
            cmd += ["--input", "%s=%s" % (inp["name"], path)]
        cmd += ["--output-dir", tmp]
        if verbose:
            print("  $ " + " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=timeout, universal_newlines=True, errors="replace")
        except subprocess.TimeoutExpired:
            return None, (time.perf_counter() - t0) * 1e3, "timeout after %ds" % timeout
        except OSError as e:
            return None, 0.0, "cannot run %s: %s" % (drt, e)
        ms = (time.perf_counter() - t0) * 1e3
        if proc.returncode != 0:
            if proc.returncode < 0:
                what = "drt killed by signal %d" % -proc.returncode
            else:
                what = "drt exit %d (%s)" % (proc.returncode,
                                             EXIT_NAMES.get(proc.returncode, "unexpected"))
            msg = last_line(proc.stderr) or last_line(proc.stdout)
            return None, ms, what + (": " + msg if msg else "")
        worst = 0.0
        for o in meta["outputs"]:
            fname = safe_name(o["name"]) + ".npy"
            ref_path = os.path.join(exp_dir, o.get("file") or fname)
            if not os.path.isfile(ref_path):
                return None, ms, "fixture is missing expected file %s" % ref_path
            ref = np.load(ref_path, allow_pickle=False)
            err, why = compare(o["name"], os.path.join(tmp, fname), ref, tol)
            if why:
                return err, ms, why
            worst = max(worst, err)
        return worst, ms, None
    finally:
        if keep:
            print("  outputs kept in %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description="Run the model fixtures through `drt run`.")
    ap.add_argument("--drt", required=True, help="path to the drt executable")
    ap.add_argument("--filter", help="regex; only fixtures whose name matches (re.search)")
    ap.add_argument("--fixtures", default=os.path.join(HERE, "fixtures"),
                    help="fixtures root (default %(default)s)")
    ap.add_argument("--tol", type=float, help="override every fixture's tolerance")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per drt run")
    ap.add_argument("--keep", action="store_true", help="keep drt's output directories")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the drt command lines")
    args = ap.parse_args()

    drt = os.path.abspath(args.drt) if os.sep in args.drt else (shutil.which(args.drt) or args.drt)
    if not (os.path.isfile(drt) and os.access(drt, os.X_OK)):
        print("error: drt executable not found: %s" % args.drt, file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    if not os.path.isdir(args.fixtures):
        print("error: fixtures directory not found: %s (run gen_fixtures.py)" % args.fixtures,
              file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    names = sorted(e for e in os.listdir(args.fixtures)
                   if os.path.isfile(os.path.join(args.fixtures, e, "meta.json")))
    if args.filter:
        rx = re.compile(args.filter)
        names = [n for n in names if rx.search(n)]
    if not names:
        print("error: no fixtures%s in %s" % (" match %r" % args.filter if args.filter else "",
                                              args.fixtures), file=sys.stderr)
        print("0 passed, 1 failed")
        return 1

    passed = failed = 0
    for name in names:
        fdir = os.path.join(args.fixtures, name)
        try:
            with open(os.path.join(fdir, "meta.json")) as f:
                meta = json.load(f)
            data_sets = meta.get("data_sets") or [{"inputs": "inputs", "expected": "expected"}]
            tol = args.tol if args.tol is not None else float(meta.get("tolerance", 1e-4))
            if not meta.get("inputs") or not meta.get("outputs"):
                raise KeyError("inputs/outputs")
        except (OSError, ValueError, KeyError) as e:
            print("%-34s %10s  FAIL  %8s  bad meta.json: %s" % (name, "-", "-", e))
            failed += 1
            continue
        for ds in data_sets:
            label = name if ds["inputs"] == "inputs" else "%s/%s" % (
                name, ds["inputs"].replace("inputs_", ""))
            err, ms, why = run_case(drt, fdir, meta, ds, tol, args.timeout, args.keep,
                                   args.verbose)
            ok = why is None
            passed += ok
            failed += not ok
            print("%-34s %10s  %s  %8.1f ms%s" % (
                label, "-" if err is None else "%.3e" % err, "PASS" if ok else "FAIL", ms,
                "" if ok else "  " + why), flush=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
