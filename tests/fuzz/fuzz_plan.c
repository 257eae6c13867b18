/* libFuzzer target: plan bytes -> drt_plan_load_memory -> drt_session_create (nothing runs;
 * plans needing over 256 MiB of activations are loaded but get no session).
 *
 * Every section of a plan is checksummed, so almost every mutation would stop at a checksum
 * mismatch. Each input is therefore loaded twice: as given, and with the header's file size
 * and every checksum the header and section table allow recomputed, so the fuzzer reaches the
 * graph, signature and schedule decoders. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distilrt.h"
#include "runtime/bytes.h"
#include "runtime/plan_format.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static uint64_t le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static uint32_t le32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Recomputes what a writer would have: file size, section checksums, header checksum. */
static void fix_checksums(unsigned char *b, size_t size) {
  if (size < DRT_PLAN_HEADER_SIZE) return;
  put64(b + 40, size);
  uint32_t nsec = le32(b + 24);
  uint64_t table = le64(b + 32);
  if (nsec <= DRT_PLAN_MAX_SECTIONS && table <= size && (uint64_t)nsec * DRT_PLAN_SECTION_ENTRY_SIZE <= size - table) {
    for (uint32_t i = 0; i < nsec; i++) {
      unsigned char *e = b + table + (size_t)i * DRT_PLAN_SECTION_ENTRY_SIZE;
      uint64_t off = le64(e + 8), sz = le64(e + 16);
      if (off <= size && sz <= size - off) put32(e + 24, drt_crc32(b + off, (size_t)sz));
    }
  }
  put32(b + 48, drt_crc32(b, 48));
}

static void load(const void *bytes, size_t size) {
  drt_plan *p = NULL;
  if (drt_plan_load_memory(bytes, size, &p) != DRT_STATUS_OK) return;
  drt_tensor_desc d;
  for (int i = 0; i < drt_plan_num_inputs(p); i++) drt_plan_input(p, i, &d);
  for (int i = 0; i < drt_plan_num_outputs(p); i++) drt_plan_output(p, i, &d);
  drt_memory_info mi;
  drt_plan_memory(p, &mi);
  int steps;
  (void)drt_plan_schedule(p, &steps);
  /* like a service with a memory budget: a plan whose shapes need more than 256 MiB of
     activations is valid but not instantiated here (the allocation would trip the fuzzer) */
  if (mi.activations > (256u << 20) || mi.workspace > (256u << 20)) {
    drt_plan_destroy(p);
    return;
  }
  drt_session_options so;
  drt_session_options_init(&so);
  so.num_threads = 1;
  drt_session *s = NULL;
  if (drt_session_create(p, &so, &s) == DRT_STATUS_OK) drt_session_destroy(s);
  drt_plan_destroy(p);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  load(data, size);
  if (size >= DRT_PLAN_HEADER_SIZE && memcmp(data, DRT_PLAN_MAGIC, 8) == 0) {
    unsigned char *copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    fix_checksums(copy, size);
    load(copy, size);
    free(copy);
  }
  return 0;
}
