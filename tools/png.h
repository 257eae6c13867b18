/* Minimal PNG writer (8-bit RGB, zlib "stored" blocks: no compression library needed). */
#ifndef DRT_TOOLS_PNG_H
#define DRT_TOOLS_PNG_H

#include "ir/graph.h"

/* Writes an image tensor [1,C,H,W] or [C,H,W] (C = 1 or 3) with values in [-1, 1]
 * (mapped to 0..255, clamped) to path, atomically. */
drt_status drt_png_write_tensor(const char *path, const drt_tensor *t);

#endif
