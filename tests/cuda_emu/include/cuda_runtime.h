/* Emulator replacement for the CUDA toolkit header cuda_runtime.h: everything lives in emu.h. */
#include "../emu.h"
