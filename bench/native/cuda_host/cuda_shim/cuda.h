// bench/native/cuda_host: stands in for the CUDA header of this name (see kiln_host_cuda.h).
#pragma once
#include "kiln_host_cuda.h"
