# tessera_cuda_emulated_tests: the [cuda] tests (all but cuBLAS's) linked against the kernels of
# kernels/cuda/ translated to C++ (translate_cu.py) and run on the CPU emulation of emu.h, with a
# host-memory stand-in for the CUDA runtime (emu_runtime.cc). It needs the CUDA headers but no GPU
# and no nvcc, so CI checks the kernels' indexing, masking and barriers against the CPU twins.
# Included from tests/cuda/cuda_tests.cmake, after the tessera_cuda_test_objects library.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
get_filename_component(tessera_root "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
set(emu_src "${CMAKE_CURRENT_LIST_DIR}")
set(emu_out "${CMAKE_CURRENT_BINARY_DIR}/emulated")

# cuBLAS has no emulation: the GEMM launchers (matmul.cu, the handle and its plan cache) and
# their tests stay GPU-only until a cuBLASLt stand-in is linked.
file(GLOB emu_inputs CONFIGURE_DEPENDS ${tessera_root}/kernels/cuda/*.cu
                                       ${tessera_root}/kernels/cuda/*.cuh)
list(FILTER emu_inputs EXCLUDE
     REGEX "/(matmul\\.cu|cublas_handle\\.cu|cublas_check\\.cuh|gemm_plan_cache\\.cuh?)$")
set(emu_sources "")
set(emu_headers "")
foreach(input ${emu_inputs})
  get_filename_component(name ${input} NAME)
  if(name MATCHES "\\.cu$")
    string(REGEX REPLACE "\\.cu$" ".cc" name ${name})
    list(APPEND emu_sources ${emu_out}/kernels/cuda/${name})
  else()
    list(APPEND emu_headers ${emu_out}/kernels/cuda/${name})
  endif()
  add_custom_command(OUTPUT ${emu_out}/kernels/cuda/${name}
                     COMMAND ${CMAKE_COMMAND} -E make_directory ${emu_out}/kernels/cuda
                     COMMAND ${Python3_EXECUTABLE} ${emu_src}/translate_cu.py ${input}
                             ${emu_out}/kernels/cuda/${name}
                     DEPENDS ${input} ${emu_src}/translate_cu.py
                     COMMENT "Translating ${input} for the CUDA emulation" VERBATIM)
endforeach()
set_source_files_properties(${emu_sources} PROPERTIES COMPILE_OPTIONS "-include;${emu_src}/emu.h")

add_library(tessera_cuda_kernels_emulated STATIC ${emu_sources} ${emu_headers}
                                                 ${emu_src}/emu_runtime.cc ${emu_src}/emu_memory.cc
                                                 ${emu_src}/emu_scheduler.cc)
# The translated headers (common.cuh) shadow the originals: the output folder comes first.
target_include_directories(tessera_cuda_kernels_emulated BEFORE PRIVATE ${emu_out})
target_include_directories(tessera_cuda_kernels_emulated PUBLIC ${tessera_root}
                                                                ${CUDAToolkit_INCLUDE_DIRS})
target_link_libraries(tessera_cuda_kernels_emulated PUBLIC fmt::fmt)

add_executable(tessera_cuda_emulated_tests)
target_link_libraries(tessera_cuda_emulated_tests PRIVATE tessera_cuda_test_objects
                                                          tessera_cuda_kernels_emulated)
# [long] cases (a T = 8192 attention) would take hours on fibers.
add_test(NAME cuda.emulated COMMAND tessera_cuda_emulated_tests "[cuda]~[long]")
set_tests_properties(cuda.emulated PROPERTIES LABELS cuda TIMEOUT 900)

# The emulator's own checks, each shown refusing a deliberately wrong kernel or runtime call.
add_custom_command(OUTPUT ${emu_out}/bad_kernels.cc
                   COMMAND ${Python3_EXECUTABLE} ${emu_src}/translate_cu.py ${emu_src}/bad_kernels.cu
                           ${emu_out}/bad_kernels.cc
                   DEPENDS ${emu_src}/bad_kernels.cu ${emu_src}/translate_cu.py
                   COMMENT "Translating bad_kernels.cu for the emulator's checks" VERBATIM)
set_source_files_properties(${emu_out}/bad_kernels.cc PROPERTIES COMPILE_OPTIONS "-include;${emu_src}/emu.h")
add_executable(tessera_cuda_emulator_checks ${emu_out}/bad_kernels.cc ${emu_src}/test_emulator_checks.cc)
target_link_libraries(tessera_cuda_emulator_checks PRIVATE tessera_cuda_kernels_emulated Catch2::Catch2)
add_test(NAME cuda.emulator_checks COMMAND tessera_cuda_emulator_checks)
set_tests_properties(cuda.emulator_checks PROPERTIES LABELS cuda TIMEOUT 60)
