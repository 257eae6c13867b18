/* Emulator replacement for the CUDA toolkit header cuda_bf16.h: everything lives in emu.h. */
#include "../emu.h"
