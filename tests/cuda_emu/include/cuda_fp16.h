/* Emulator replacement for the CUDA toolkit header cuda_fp16.h: everything lives in emu.h. */
#include "../emu.h"
