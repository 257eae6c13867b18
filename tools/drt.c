/* drt: the distilrt command-line tool. */
#include <stdio.h>
#include <string.h>

#include "distilrt.h"
#include "tools/cli.h"

static void usage(FILE *f) {
  fprintf(f,
          "drt %s — compiler and runtime for distilled diffusion generators\n\n"
          "usage: drt <command> [options]\n\n"
          "commands:\n"
          "  compile   compile an ONNX model into a .plan\n"
          "  run       run one evaluation of an ONNX model or a .plan on .npy inputs\n"
          "  generate  run a whole sampling schedule with a compiled plan\n"
          "  bench     latency, NFE and memory of a plan (student vs teacher)\n"
          "  refit     replace the weights of a plan (another checkpoint) without recompiling\n"
          "  inspect   print a model's inputs, outputs, opsets, op histogram, parameters and graph\n"
          "  ops       list the ONNX ops distilrt supports\n\n"
          "'drt <command> --help' describes each command.\n"
          "exit codes: 0 ok, 1 usage, 2 bad input (model, tensor, shape), 3 unsupported (op, dtype,\n"
          "domain), 4 internal error\n",
          drt_version());
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return DRT_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(cmd, "--version") == 0) {
    printf("drt %s\n", drt_version());
    return 0;
  }
  if (strcmp(cmd, "compile") == 0) return drt_cmd_compile(argc - 1, argv + 1);
  if (strcmp(cmd, "generate") == 0) return drt_cmd_generate(argc - 1, argv + 1);
  if (strcmp(cmd, "bench") == 0) return drt_cmd_bench(argc - 1, argv + 1);
  if (strcmp(cmd, "refit") == 0) return drt_cmd_refit(argc - 1, argv + 1);
  if (strcmp(cmd, "run") == 0) return drt_cmd_run(argc - 1, argv + 1);
  if (strcmp(cmd, "inspect") == 0) return drt_cmd_inspect(argc - 1, argv + 1);
  if (strcmp(cmd, "ops") == 0) return drt_cmd_ops(argc - 1, argv + 1);
  fprintf(stderr, "drt: unknown command '%s'\n\n", cmd);
  usage(stderr);
  return DRT_EXIT_USAGE;
}
