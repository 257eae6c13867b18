/* `--lora FILE[:STRENGTH]` and `--lora-mode merged|unmerged` for drt generate and drt bench. */
#ifndef DRT_TOOLS_CLI_LORA_H
#define DRT_TOOLS_CLI_LORA_H

#include "distilrt.h"
#include "tools/cli.h"

#define DRT_CLI_MAX_LORAS 16

typedef struct drt_cli_loras {
  int count;
  const char *files[DRT_CLI_MAX_LORAS];
  float strengths[DRT_CLI_MAX_LORAS];
  bool unmerged;
  drt_lora *loaded[DRT_CLI_MAX_LORAS];
  char *owned[DRT_CLI_MAX_LORAS]; /* file names split off a ":STRENGTH" */
} drt_cli_loras;

/* Handles --lora / --lora-mode at argv[*i]: 1 when consumed, 0 when not one of them, or a
 * negative exit code after printing a usage error. */
int drt_cli_lora_option(drt_cli_loras *l, const char *cmd, int argc, char **argv, int *i);
/* Loads the files for plan p (listing their unknown keys on stderr); in merged mode merges them
 * into the plan. Returns an exit code (0 on success; the error printed). */
int drt_cli_loras_load(drt_cli_loras *l, const char *cmd, drt_plan *p);
/* In unmerged mode, sets them on the session. Returns an exit code. */
int drt_cli_loras_session(drt_cli_loras *l, const char *cmd, drt_session *s);
void drt_cli_loras_free(drt_cli_loras *l);
/* Usage lines for the two options. */
const char *drt_cli_lora_usage(void);

#endif
