// The CUDA stream handle, declared as cuda_runtime.h declares it, so that headers of the CUDA
// kernels can be included by translation units built without the CUDA headers.
#pragma once

struct CUstream_st;
using cudaStream_t = CUstream_st*;
