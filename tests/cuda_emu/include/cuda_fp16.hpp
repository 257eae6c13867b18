/* Emulator replacement for the CUDA toolkit header cuda_fp16.hpp: everything lives in emu.h. */
#include "../emu.h"
