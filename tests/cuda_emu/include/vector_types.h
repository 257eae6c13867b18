/* Emulator replacement for the CUDA toolkit header vector_types.h: everything lives in emu.h. */
#include "../emu.h"
