/* Emulator replacement for the CUDA toolkit header mma.h: everything lives in emu.h. */
#include "../emu.h"
