/* Nesting-depth check on protobuf wire bytes before protobuf-c unpacks them.
 *
 * protobuf-c recurses once per nested message, so a small crafted file (attribute -> graph ->
 * node -> attribute -> ...) could exhaust the stack. This walk follows only the fields the
 * schema declares as messages, using the generated descriptors, and refuses nesting past
 * DRT_ONNX_MAX_DEPTH. Malformed bytes are left for protobuf-c to reject. */
#include <inttypes.h>

#include "frontend/onnx_internal.h"

#define DRT_ONNX_MAX_DEPTH 64

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

/* Returns the depth reached (capped at limit + 1); malformed input stops the walk early. */
static int walk(const uint8_t *p, const uint8_t *end, const ProtobufCMessageDescriptor *desc, int depth) {
  if (depth > DRT_ONNX_MAX_DEPTH) return depth;
  int deepest = depth;
  while (p < end) {
    uint64_t key, len;
    if (!read_varint(&p, end, &key)) return deepest;
    switch (key & 7) {
      case 0:
        if (!read_varint(&p, end, &len)) return deepest;
        break;
      case 1:
        if (end - p < 8) return deepest;
        p += 8;
        break;
      case 5:
        if (end - p < 4) return deepest;
        p += 4;
        break;
      case 2: {
        if (!read_varint(&p, end, &len) || len > (uint64_t)(end - p)) return deepest;
        uint64_t number = key >> 3;
        const ProtobufCFieldDescriptor *f =
            number <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(desc, (unsigned)number) : NULL;
        if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor) {
          int d = walk(p, p + len, f->descriptor, depth + 1);
          if (d > deepest) deepest = d;
          if (deepest > DRT_ONNX_MAX_DEPTH) return deepest;
        }
        p += len;
        break;
      }
      default:
        return deepest; /* groups and invalid wire types: protobuf-c decides */
    }
  }
  return deepest;
}

drt_status drt_onnx_proto_check_depth(const void *data, size_t size, const char *label) {
  const uint8_t *p = data;
  int d = walk(p, p + size, &onnx__model_proto__descriptor, 1);
  if (d > DRT_ONNX_MAX_DEPTH)
    return DRT_ERROR(DRT_STATUS_CORRUPT,
                     "'%s' is not a valid ONNX model (protobuf parse failed: messages nested deeper than %d levels)",
                     label, DRT_ONNX_MAX_DEPTH);
  return DRT_OK;
}
