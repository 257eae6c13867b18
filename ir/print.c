/* Text and Graphviz printers for graphs. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ir/graph.h"

typedef struct {
  char buf[4096];
  size_t len;
  drt_write_fn write;
  void *user;
} line_buf;

static void lb_flush(line_buf *lb) {
  if (lb->len) lb->write(lb->user, lb->buf);
  lb->len = 0;
  lb->buf[0] = 0;
}

static void lb_printf(line_buf *lb, const char *fmt, ...) DRT_PRINTF(2, 3);
static void lb_printf(line_buf *lb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(lb->buf + lb->len, sizeof lb->buf - lb->len, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof lb->buf - lb->len) {
    lb->len = sizeof lb->buf - 1; /* truncated */
    lb_flush(lb);
  } else {
    lb->len += (size_t)n;
  }
}

static void type_str(const drt_value *v, char *buf, size_t n) {
  char s[160];
  if (!v->has_shape) {
    snprintf(buf, n, "%s[?]", drt_dtype_name(v->dtype));
    return;
  }
  size_t off = 0;
  s[0] = 0;
  for (int i = 0; i < v->shape.rank && off < sizeof s; i++) {
    if (v->shape.dims[i] < 0 && v->dim_params[i])
      off += (size_t)snprintf(s + off, sizeof s - off, "%s%s", i ? "x" : "", v->dim_params[i]);
    else if (v->shape.dims[i] < 0)
      off += (size_t)snprintf(s + off, sizeof s - off, "%s?", i ? "x" : "");
    else
      off += (size_t)snprintf(s + off, sizeof s - off, "%s%" PRId64, i ? "x" : "", v->shape.dims[i]);
  }
  snprintf(buf, n, "%s[%s]", drt_dtype_name(v->dtype), s);
}

static void print_attr(line_buf *lb, const drt_attr *a) {
  switch (a->type) {
    case DRT_ATTR_FLOAT: lb_printf(lb, "%s=%g", a->name, (double)a->f); break;
    case DRT_ATTR_INT: lb_printf(lb, "%s=%" PRId64, a->name, a->i); break;
    case DRT_ATTR_STRING: lb_printf(lb, "%s=\"%.64s\"", a->name, a->s ? a->s : ""); break;
    case DRT_ATTR_INTS:
      lb_printf(lb, "%s=[", a->name);
      for (int64_t i = 0; i < a->count && i < 16; i++) lb_printf(lb, "%s%" PRId64, i ? "," : "", a->ints[i]);
      lb_printf(lb, "%s]", a->count > 16 ? ",..." : "");
      break;
    case DRT_ATTR_FLOATS:
      lb_printf(lb, "%s=[", a->name);
      for (int64_t i = 0; i < a->count && i < 16; i++) lb_printf(lb, "%s%g", i ? "," : "", (double)a->floats[i]);
      lb_printf(lb, "%s]", a->count > 16 ? ",..." : "");
      break;
    case DRT_ATTR_TENSOR: lb_printf(lb, "%s=<tensor>", a->name); break;
    case DRT_ATTR_GRAPH:
      lb_printf(lb, "%s=<graph, %zu nodes>", a->name, a->graph ? a->graph->num_nodes : (size_t)0);
      break;
    default: lb_printf(lb, "%s=<%d>", a->name, (int)a->type); break;
  }
}

void drt_graph_print(const drt_graph *g, drt_write_fn write, void *user) {
  line_buf lb = {.len = 0, .write = write, .user = user};
  char t[256];
  lb_printf(&lb, "graph %s (opset %d, %zu nodes)\n", g->name, g->opset, g->num_nodes);
  lb_flush(&lb);
  for (size_t i = 0; i < g->num_inputs; i++) {
    type_str(g->inputs[i], t, sizeof t);
    lb_printf(&lb, "  input  %%%s : %s\n", g->inputs[i]->name, t);
    lb_flush(&lb);
  }
  for (size_t i = 0; i < g->num_nodes; i++) {
    const drt_node *n = g->nodes[i];
    lb_printf(&lb, "  ");
    for (int j = 0; j < n->num_outputs; j++) {
      type_str(n->outputs[j], t, sizeof t);
      lb_printf(&lb, "%s%%%s : %s", j ? ", " : "", n->outputs[j]->name, t);
    }
    lb_printf(&lb, " = %s", drt_op_name(n->op));
    if (n->num_attrs) {
      lb_printf(&lb, "{");
      for (int j = 0; j < n->num_attrs; j++) {
        if (j) lb_printf(&lb, ", ");
        print_attr(&lb, &n->attrs[j]);
      }
      lb_printf(&lb, "}");
    }
    lb_printf(&lb, "(");
    for (int j = 0; j < n->num_inputs; j++) {
      const drt_value *v = n->inputs[j];
      lb_printf(&lb, "%s%s%s", j ? ", " : "", v ? (v->kind == DRT_VALUE_CONST ? "$" : "%") : "", v ? v->name : "_");
    }
    lb_printf(&lb, ")  # %s\n", n->name);
    lb_flush(&lb);
  }
  for (size_t i = 0; i < g->num_outputs; i++) {
    type_str(g->outputs[i], t, sizeof t);
    lb_printf(&lb, "  output %%%s : %s\n", g->outputs[i]->name, t);
    lb_flush(&lb);
  }
}

static void dot_escape(line_buf *lb, const char *s) {
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') lb_printf(lb, "\\%c", *s);
    else if ((unsigned char)*s >= 32) lb_printf(lb, "%c", *s);
  }
}

void drt_graph_print_dot(const drt_graph *g, drt_write_fn write, void *user) {
  line_buf lb = {.len = 0, .write = write, .user = user};
  lb_printf(&lb, "digraph \"");
  dot_escape(&lb, g->name);
  lb_printf(&lb, "\" {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n");
  lb_flush(&lb);
  for (size_t i = 0; i < g->num_inputs; i++) {
    lb_printf(&lb, "  \"v%u\" [shape=ellipse, label=\"", g->inputs[i]->id);
    dot_escape(&lb, g->inputs[i]->name);
    lb_printf(&lb, "\"];\n");
    lb_flush(&lb);
  }
  for (size_t i = 0; i < g->num_nodes; i++) {
    const drt_node *n = g->nodes[i];
    lb_printf(&lb, "  \"n%u\" [label=\"%s\\n", n->id, drt_op_name(n->op));
    dot_escape(&lb, n->name);
    lb_printf(&lb, "\"];\n");
    lb_flush(&lb);
    for (int j = 0; j < n->num_inputs; j++) {
      const drt_value *v = n->inputs[j];
      if (!v || v->kind == DRT_VALUE_CONST) continue;
      if (v->kind == DRT_VALUE_INPUT) lb_printf(&lb, "  \"v%u\" -> \"n%u\";\n", v->id, n->id);
      else if (v->producer) lb_printf(&lb, "  \"n%u\" -> \"n%u\";\n", v->producer->id, n->id);
      lb_flush(&lb);
    }
  }
  for (size_t i = 0; i < g->num_outputs; i++) {
    const drt_value *v = g->outputs[i];
    lb_printf(&lb, "  \"o%zu\" [shape=ellipse, label=\"", i);
    dot_escape(&lb, v->name);
    lb_printf(&lb, "\"];\n");
    if (v->producer) lb_printf(&lb, "  \"n%u\" -> \"o%zu\";\n", v->producer->id, i);
    lb_flush(&lb);
  }
  lb_printf(&lb, "}\n");
  lb_flush(&lb);
}
