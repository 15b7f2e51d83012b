# [cuda] tests, included from tests/CMakeLists.txt (binaries in its build folder):
# tessera_cuda_tests runs every CUDA kernel against its CPU twin (and the device
# allocator's policy on a host backend); tessera_cuda_gemm_bench is the GEMM benchmark of
# run_device_checks.sh; tessera_cuda_emulated_tests (emulator/) runs the same tests, but the
# cuBLAS ones, on a CPU emulation of the kernels. Built only with the CUDA backend; without a
# GPU the [cuda] cases of tessera_cuda_tests skip.
# The device check's no-GPU path (no CUDA build needed): it must fail loudly, with its table.
add_test(NAME cuda.device_checks_no_gpu
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_device_checks_no_gpu.sh
                 ${CMAKE_CURRENT_BINARY_DIR}/device_checks_no_gpu)
set_tests_properties(cuda.device_checks_no_gpu PROPERTIES LABELS cuda TIMEOUT 60)

if(NOT TESSERA_HAVE_CUDA)
  return()
endif()
option(TESSERA_CUDA_EMULATOR "Build and run the CUDA kernels on a CPU emulation (no GPU needed)" ON)

# The test files, compiled once for both executables: they call the kernels' host launchers and
# the CUDA runtime, which each executable links in its own form.
file(GLOB TESSERA_CUDA_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_*.cc)
list(FILTER TESSERA_CUDA_TEST_SOURCES EXCLUDE REGEX "/test_cuda_matmul\\.cc$")
add_library(tessera_cuda_test_objects OBJECT ${CMAKE_CURRENT_LIST_DIR}/main.cc
                                             ${TESSERA_CUDA_TEST_SOURCES})
target_link_libraries(tessera_cuda_test_objects PUBLIC tessera_kernels Catch2::Catch2)
target_include_directories(tessera_cuda_test_objects PUBLIC ${CUDAToolkit_INCLUDE_DIRS})

add_executable(tessera_cuda_tests ${CMAKE_CURRENT_LIST_DIR}/test_cuda_matmul.cc)
target_link_libraries(tessera_cuda_tests PRIVATE tessera_cuda_test_objects tessera_cuda_kernels
                                                 CUDA::cudart)

add_executable(tessera_cuda_gemm_bench ${CMAKE_CURRENT_LIST_DIR}/gemm_bench.cc)
target_link_libraries(tessera_cuda_gemm_bench PRIVATE tessera_cuda_kernels CUDA::cudart)

# One CTest test for the [cuda] cases, reported as skipped (not passed) where there is no GPU,
# and one for the [host] cases, which run everywhere.
add_test(NAME cuda.kernels COMMAND tessera_cuda_tests "[cuda]")
set_tests_properties(cuda.kernels PROPERTIES LABELS cuda TIMEOUT 600
                     SKIP_REGULAR_EXPRESSION "no CUDA device: \\[cuda\\] tests skipped")
add_test(NAME cuda.allocator_policy COMMAND tessera_cuda_tests "[host]")
set_tests_properties(cuda.allocator_policy PROPERTIES LABELS cuda TIMEOUT 60)

if(TESSERA_CUDA_EMULATOR)
  include(${CMAKE_CURRENT_LIST_DIR}/emulator/emulator.cmake)
endif()
