/* libFuzzer target: the option parsers on arbitrary text: the drt command line's --shape dims
 * ("1x4x64x64"), NAME=VALUE splitting and --max-memory byte counts (tools/cli.c), and the
 * schedule parser (runtime/sampler.h): the first line names the schedule, the second the step
 * count, the rest is the options string ("shift=3.0,timesteps=999/499"); a schedule that parses
 * is also built, and its scalars must be finite. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/sampler.h"
#include "tools/cli.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;

  drt_shape s;
  drt_status st = drt_cli_parse_dims(text, &s);
  if (!st) {
    if (s.rank < 0 || s.rank > DRT_MAX_RANK) abort();
    for (int i = 0; i < s.rank; i++)
      if (s.dims[i] < 0) abort();
    char buf[256];
    drt_shape_str(&s, buf, sizeof buf);
  }
  drt_status_free(st);

  char name[256];
  const char *value = NULL;
  if (drt_cli_split_kv(text, name, sizeof name, &value)) {
    if (strlen(name) >= sizeof name || value < text || value > text + size) abort();
    st = drt_cli_parse_dims(value, &s);
    drt_status_free(st);
  }

  uint64_t bytes = 0;
  st = drt_cli_parse_bytes(text, &bytes);
  drt_status_free(st);

  /* schedule: "NAME\nSTEPS\nOPTIONS" */
  char *nl1 = strchr(text, '\n');
  if (nl1) {
    *nl1 = 0;
    char *steps_s = nl1 + 1, *opts = "";
    char *nl2 = strchr(steps_s, '\n');
    if (nl2) {
      *nl2 = 0;
      opts = nl2 + 1;
    }
    int steps = (int)strtol(steps_s, NULL, 10);
    drt_schedule_params sp;
    st = drt_schedule_parse_params(text, steps, opts, &sp);
    if (!st) {
      drt_schedule sched;
      st = drt_schedule_build(&sp, &sched);
      if (!st) {
        if (sched.num_steps < 1 || sched.num_steps > DRT_SCHED_MAX_STEPS || !isfinite(sched.init_noise_sigma)) abort();
        for (int k = 0; k < sched.num_steps; k++) {
          const drt_sched_step *q = &sched.steps[k];
          double v[9] = {q->t_model, q->c_in, q->p_x, q->p_m, q->q_x, q->q_m, q->a, q->b, q->c};
          for (int j = 0; j < 9; j++)
            if (!isfinite(v[j])) {
              fprintf(stderr, "schedule '%s' step %d: scalar %d is %g\n", sched.name, k, j, v[j]);
              abort();
            }
        }
        drt_schedule_free(&sched);
      }
    }
    drt_status_free(st);
  }

  free(text);
  return 0;
}
