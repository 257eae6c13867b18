#!/usr/bin/env python3
"""If / Loop / Scan (passes/control_flow.h) against ONNX's reference implementation, with fresh
seeded random inputs, each model run twice: with small inputs specialized to constants (`drt
run`'s default: conditions and trip counts fold, branches inline, loops unroll) and with every
input dynamic (--no-specialize: an If selects with Where). Covered: captures from one and two
enclosing levels, an If inside a Loop body, loop-carried values that grow, a condition
computed from the iteration number, scan outputs, Scan in both directions and on other axes
(opset 9+), Scan's opset-8 batch form, and compile-time sequences (a Loop-carried sequence,
SplitToSequence, SequenceAt/Insert/Erase/Length, ConcatFromSequence). Then the refusals, each with a message naming the
node and the value: a run-time condition whose branches differ in shape, a data-dependent loop
exit, a trip count known only at run time.

Usage: test_control_flow.py --drt PATH [--seed N] [-v]. Exit 0 when every check passes.
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
from onnx import TensorProto as T
from onnx import helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_lowp import Checker, parse_args  # noqa: E402  (same directory)

F = T.FLOAT
RTOL = 1e-6


def vi(name, dt, shape):
    return helper.make_tensor_value_info(name, dt, shape)


def model(nodes, inputs, outputs, opset=17, inits=()):
    g = helper.make_graph(nodes, "cf", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def if_model():
    """z = If(c) then (x + y) * w else Sub(x, y) with an If nested in the else branch that reads
    x from two levels up."""
    w = helper.make_tensor("w", F, [3], [0.5, -2.0, 3.0])
    then = helper.make_graph([helper.make_node("Add", ["x", "y"], ["s"]), helper.make_node("Mul", ["s", "w"], ["t"])],
                             "then", [], [vi("t", F, [2, 3])])
    inner_then = helper.make_graph([helper.make_node("Neg", ["x"], ["n"])], "it", [], [vi("n", F, [2, 3])])
    inner_else = helper.make_graph([helper.make_node("Abs", ["x"], ["a"])], "ie", [], [vi("a", F, [2, 3])])
    els = helper.make_graph([helper.make_node("If", ["c2"], ["i"], then_branch=inner_then, else_branch=inner_else),
                             helper.make_node("Sub", ["i", "y"], ["e"])], "else", [], [vi("e", F, [2, 3])])
    return model([helper.make_node("If", ["c"], ["z"], then_branch=then, else_branch=els)],
                 [vi("c", T.BOOL, []), vi("c2", T.BOOL, [1]), vi("x", F, [2, 3]), vi("y", F, [2, 3])],
                 [vi("z", F, [2, 3])], inits=[w])


def loop_model(with_if=True):
    """for i < M while cond: acc = acc * a + i (an If on i % 2 picks a's sign), seq = Concat(seq, [i]),
    cond = i < limit; scan output: acc each iteration."""
    body_nodes = [
        helper.make_node("Cast", ["i"], ["fi"], to=F),
        helper.make_node("Constant", [], ["two"], value=helper.make_tensor("two", T.INT64, [], [2])),
        helper.make_node("Mod", ["i", "two"], ["odd_i"]),
        helper.make_node("Cast", ["odd_i"], ["odd"], to=T.BOOL),
    ]
    if with_if:
        neg = helper.make_graph([helper.make_node("Neg", ["a"], ["na"])], "neg", [], [vi("na", F, [4])])
        pos = helper.make_graph([helper.make_node("Identity", ["a"], ["pa"])], "pos", [], [vi("pa", F, [4])])
        body_nodes.append(helper.make_node("If", ["odd"], ["sa"], then_branch=neg, else_branch=pos))
    else:
        body_nodes.append(helper.make_node("Identity", ["a"], ["sa"]))
    body_nodes += [
        helper.make_node("Mul", ["acc", "sa"], ["m"]),
        helper.make_node("Add", ["m", "fi"], ["acc_out"]),
        helper.make_node("Constant", [], ["ax"], value=helper.make_tensor("ax", T.INT64, [1], [0])),
        helper.make_node("Unsqueeze", ["fi", "ax"], ["fi1"]),
        helper.make_node("Concat", ["seq", "fi1"], ["seq_out"], axis=0),
        helper.make_node("Less", ["i", "limit"], ["cond_out"]),
        helper.make_node("Identity", ["acc_out"], ["scan_acc"]),
    ]
    body = helper.make_graph(body_nodes, "body",
                             [vi("i", T.INT64, []), vi("cond_in", T.BOOL, []), vi("acc", F, [4]), vi("seq", F, None)],
                             [vi("cond_out", T.BOOL, []), vi("acc_out", F, [4]), vi("seq_out", F, None),
                              vi("scan_acc", F, [4])])
    return model([helper.make_node("Loop", ["M", "cond", "acc0", "seq0"], ["acc_f", "seq_f", "accs"], body=body)],
                 [vi("M", T.INT64, []), vi("cond", T.BOOL, []), vi("limit", T.INT64, []), vi("a", F, [4]),
                  vi("acc0", F, [4]), vi("seq0", F, [1])],
                 [vi("acc_f", F, [4]), vi("seq_f", F, None), vi("accs", F, None)], opset=13)


def scan_model(opset):
    """Running sum of rows (a state) and a per-row product with a captured vector, over axis 1 of
    x (reverse) and axis 0 of y; outputs stacked on axis 1 (forward) and 0 (reverse)."""
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "xr"], ["s2"]), helper.make_node("Mul", ["xr", "v"], ["p"]),
         helper.make_node("Add", ["s2", "yr"], ["q"])],
        "body", [vi("s", F, [3]), vi("xr", F, [3]), vi("yr", F, [3])],
        [vi("s2", F, [3]), vi("p", F, [3]), vi("q", F, [3])])
    if opset >= 9:
        node = helper.make_node("Scan", ["s0", "x", "y"], ["sf", "ps", "qs"], body=body, num_scan_inputs=2,
                                scan_input_axes=[1, 0], scan_input_directions=[1, 0], scan_output_axes=[1, -2],
                                scan_output_directions=[0, 1])
        return model([node], [vi("s0", F, [3]), vi("x", F, [3, 5]), vi("y", F, [5, 3]), vi("v", F, [3])],
                     [vi("sf", F, [3]), vi("ps", F, None), vi("qs", F, None)], opset=opset)
    node = helper.make_node("Scan", ["", "s0", "x", "y"], ["sf", "ps", "qs"], body=body, num_scan_inputs=2,
                            directions=[1, 0])
    return model([node], [vi("s0", F, [2, 3]), vi("x", F, [2, 5, 3]), vi("y", F, [2, 5, 3]), vi("v", F, [3])],
                 [vi("sf", F, [2, 3]), vi("ps", F, None), vi("qs", F, None)], opset=8)


def sequence_model():
    """A Loop carrying a sequence (one tensor inserted per iteration), then read back as one
    tensor; SplitToSequence / SequenceAt / SequenceErase / SequenceLength on the side."""
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["fi"], to=F), helper.make_node("Mul", ["x", "fi"], ["xi"]),
         helper.make_node("SequenceInsert", ["s_in", "xi"], ["s_out"]),
         helper.make_node("Identity", ["c_in"], ["c_out"])],
        "body", [vi("i", T.INT64, []), vi("c_in", T.BOOL, []),
                 helper.make_tensor_sequence_value_info("s_in", F, [2, 3])],
        [vi("c_out", T.BOOL, []), helper.make_tensor_sequence_value_info("s_out", F, [2, 3])])
    nodes = [
        helper.make_node("SequenceEmpty", [], ["s0"], dtype=F),
        helper.make_node("Loop", ["M", "go", "s0"], ["s"], body=body),  # onnx.reference needs the condition
        helper.make_node("ConcatFromSequence", ["s"], ["stacked"], axis=1, new_axis=1),
        helper.make_node("SplitToSequence", ["x", "sp"], ["parts"], axis=1),
        helper.make_node("SequenceAt", ["parts", "one"], ["second"]),
        helper.make_node("SequenceErase", ["s", "zero"], ["s_rest"]),
        helper.make_node("SequenceLength", ["s_rest"], ["n_rest"]),
        helper.make_node("ConcatFromSequence", ["s_rest"], ["joined"], axis=0),
    ]
    inits = [helper.make_tensor("sp", T.INT64, [2], [1, 2]), helper.make_tensor("one", T.INT64, [], [-1]),
             helper.make_tensor("zero", T.INT64, [], [0])]
    return model(nodes, [vi("M", T.INT64, []), vi("go", T.BOOL, []), vi("x", F, [2, 3])],
                 [vi("stacked", F, None), vi("second", F, None), vi("n_rest", T.INT64, []), vi("joined", F, None)],
                 opset=13, inits=inits)


def flex_model():
    """FlexAttention (ai.onnx.preview) with GQA, a score_mod adding a bias constant of its own (onnx.reference
    runs modifiers without the enclosing scope) and a prob_mod."""
    bias = np.linspace(-1, 1, 15, dtype=np.float32).reshape(1, 1, 3, 5)
    score = helper.make_graph([helper.make_node("Constant", [], ["bias"], value=helper.make_tensor(
                                  "bias", F, [1, 1, 3, 5], bias.ravel().tolist())),
                               helper.make_node("Add", ["sc", "bias"], ["sc2"])], "score_mod",
                              [vi("sc", F, [1, 4, 3, 5])], [vi("sc2", F, [1, 4, 3, 5])])
    prob = helper.make_graph([helper.make_node("Mul", ["p", "p"], ["p2"])], "prob_mod",
                             [vi("p", F, [1, 4, 3, 5])], [vi("p2", F, [1, 4, 3, 5])])
    node = helper.make_node("FlexAttention", ["q", "k", "v"], ["y"], domain="ai.onnx.preview", score_mod=score,
                            prob_mod=prob, scale=0.3)
    g = helper.make_graph([node], "flex", [vi("q", F, [1, 4, 3, 8]), vi("k", F, [1, 2, 5, 8]), vi("v", F, [1, 2, 5, 6])],
                          [vi("y", F, [1, 4, 3, 6])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 26), helper.make_opsetid("ai.onnx.preview", 1)])
    m.ir_version = 11
    return m


def scan_reference(s0, x, y, v, x_axis, x_rev, y_axis, y_rev, p_axis, p_rev, q_axis, q_rev):
    """Scan semantics written out in numpy for scan_model's body (s2 = s + xr, p = xr * v,
    q = s2 + yr); onnx.reference implements neither reversed scans nor opset 8."""
    n = x.shape[x_axis]
    s, ps, qs = s0.astype(np.float32), [], []
    for t in range(n):
        xr = np.take(x, n - 1 - t if x_rev else t, axis=x_axis)
        yr = np.take(y, n - 1 - t if y_rev else t, axis=y_axis)
        s = (s + xr).astype(np.float32)
        ps.append(xr * v)
        qs.append(s + yr)
    if p_rev:
        ps = ps[::-1]
    if q_rev:
        qs = qs[::-1]
    return [s, np.stack(ps, axis=p_axis), np.stack(qs, axis=q_axis)]


def scan_want(opset, feeds):
    if opset >= 9:  # x: axis 1 reversed, y: axis 0; ps on axis 1, qs on axis -2 (= 0) reversed
        return scan_reference(feeds["s0"], feeds["x"], feeds["y"], feeds["v"], 1, True, 0, False, 1, False, 0, True)
    per = [scan_reference(feeds["s0"][b], feeds["x"][b], feeds["y"][b], feeds["v"], 0, True, 0, False, 0, False, 0,
                          False) for b in range(feeds["s0"].shape[0])]
    return [np.stack([p[k] for p in per]) for k in range(3)]


def main() -> int:
    a, rng = parse_args(__doc__)

    def randn(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    with tempfile.TemporaryDirectory(prefix="drt_cf_") as tmp:
        c = Checker(a.drt, tmp, a.verbose)
        m = if_model()
        for cv in (True, False):
            for c2 in (True, False):
                feeds = {"c": np.array(cv), "c2": np.array([c2]), "x": randn(2, 3), "y": randn(2, 3)}
                for spec in (True, False):
                    c.check(f"If c={cv} inner={c2} {'folded' if spec else 'run-time (Where)'}", m, feeds, spec, RTOL)
        for with_if in (True, False):
            m = loop_model(with_if)
            for M, limit in ((6, 100), (9, 4), (1, 0)):
                feeds = {"M": np.array(M, np.int64), "cond": np.array(True), "limit": np.array(limit, np.int64),
                         "a": randn(4), "acc0": randn(4), "seq0": randn(1)}
                c.check(f"Loop M={M} exit after i={limit}{' with If' if with_if else ''}", m, feeds, True, RTOL)
        for opset in (8, 9, 16):
            m = scan_model(opset)
            if opset >= 9:
                feeds = {"s0": randn(3), "x": randn(3, 5), "y": randn(5, 3), "v": randn(3)}
            else:
                feeds = {"s0": randn(2, 3), "x": randn(2, 5, 3), "y": randn(2, 5, 3), "v": randn(3)}
            want = scan_want(opset, feeds)
            for spec in (True, False):
                c.check(f"Scan opset {opset} {'folded' if spec else 'run-time inputs'}", m, feeds, spec, RTOL, want)

        m = sequence_model()
        c.check("sequences: Loop-carried, ConcatFromSequence, SplitToSequence, SequenceAt/Erase/Length", m,
                {"M": np.array(4, np.int64), "go": np.array(True), "x": randn(2, 3)}, True, RTOL)

        m = flex_model()
        feeds = {"q": randn(1, 4, 3, 8), "k": randn(1, 2, 5, 8), "v": randn(1, 2, 5, 6)}
        for spec in (True, False):
            c.check(f"FlexAttention, GQA, score_mod, prob_mod {'folded' if spec else 'run-time'}",
                    m, feeds, spec, 1e-5)

        # refusals
        m = model([helper.make_node("SplitToSequence", ["x"], ["parts"], axis=0)], [vi("x", F, [2, 3])],
                  [helper.make_tensor_sequence_value_info("parts", F, None)])
        c.expect_error("a sequence as a graph output", m, {"x": randn(2, 3)},
                       ["graph output 'parts' is a sequence"])
        then = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [], [vi("t", F, None)])
        els = helper.make_graph([helper.make_node("Concat", ["x", "x"], ["e"], axis=0)], "else", [],
                                [vi("e", F, None)])
        m = model([helper.make_node("If", ["c"], ["z"], then_branch=then, else_branch=els, name="pick")],
                  [vi("c", T.BOOL, []), vi("x", F, [2])], [vi("z", F, None)])
        c.expect_error("run-time If with branches of two shapes", m, {"c": np.array(True), "x": randn(2)},
                       ["node 'pick' (If", "output 0 differs between the branches", "[2]", "[4]"])
        c.check("... the same If with the condition folded", m, {"c": np.array(False), "x": randn(2)}, True, RTOL)
        m = loop_model(False)
        feeds = {"M": np.array(5, np.int64), "cond": np.array(True), "limit": np.array(3, np.int64), "a": randn(4),
                 "acc0": randn(4), "seq0": randn(1)}
        c.expect_error("Loop with a run-time trip count", m, feeds, ["Loop", "trip count M 'M'",
                                                                     "compile-time constant"])
        body = helper.make_graph([helper.make_node("ReduceSum", ["acc"], ["s"], keepdims=0),
                                  helper.make_node("Less", ["s", "lim"], ["go"]),
                                  helper.make_node("Add", ["acc", "acc"], ["acc2"])], "body",
                                 [vi("i", T.INT64, []), vi("ci", T.BOOL, []), vi("acc", F, [4])],
                                 [vi("go", T.BOOL, []), vi("acc2", F, [4])])
        m = model([helper.make_node("Loop", ["", "c", "acc0"], ["acc"], body=body, name="grow")],
                  [vi("c", T.BOOL, []), vi("lim", F, []), vi("acc0", F, [4])], [vi("acc", F, [4])])
        c.expect_error("Loop exiting on data", m, {"c": np.array(True), "lim": np.array(1e3, np.float32),
                                                   "acc0": np.abs(randn(4)) + 0.1},
                       ["node 'grow' (Loop", "loop condition", "before iteration 0", "compile-time constant"])
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
