/* Emulator replacement for the CUDA toolkit header cuda_bf16.hpp: everything lives in emu.h. */
#include "../emu.h"
