# The runtime's CUDA parts (tessera_runtime_cuda: device tensors, CudaBackend) tested op by op
# against the CPU reference. tessera_cuda_backend_emulated_tests runs them in CI on the CPU
# emulation: the runtime's CUDA sources built against the translated kernels (emulator/), the
# emulated CUDA runtime, and emu_cublaslt.cc standing in for cuBLASLt under the real matmul.cu.
# tessera_cuda_backend_tests is the same on a GPU (for tests/cuda/run_device_checks.sh).
# Included from tests/CMakeLists.txt after cuda_tests.cmake.

# A build without CUDA refuses train.device = cuda in one line, before any work.
if(NOT TESSERA_HAVE_CUDA)
  add_test(NAME cuda.refuse_without_cuda_build
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_device_refusal.py
                   --expect "tessera: error: train.device = cuda: this tessera was built without CUDA (configure with -DTESSERA_CUDA=ON on a machine with the CUDA toolkit)"
                   -- $<TARGET_FILE:tessera> train ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
                   --set train.device=cuda --set data.path=${PROJECT_SOURCE_DIR}/data/tinyshakespeare.txt)
  set_tests_properties(cuda.refuse_without_cuda_build PROPERTIES LABELS cuda TIMEOUT 60)
  return()
endif()
set(backend_test_sources ${CMAKE_CURRENT_LIST_DIR}/test_cuda_backend_ops.cc
    ${CMAKE_CURRENT_LIST_DIR}/test_cuda_device_memory.cc ${CMAKE_CURRENT_LIST_DIR}/main.cc)

add_executable(tessera_cuda_backend_tests ${backend_test_sources})
target_link_libraries(tessera_cuda_backend_tests PRIVATE tessera_runtime_cuda Catch2::Catch2)
add_executable(tessera_nccl_check ${CMAKE_CURRENT_LIST_DIR}/nccl_check.cc)
target_link_libraries(tessera_nccl_check PRIVATE tessera_runtime_cuda)

if(NOT TESSERA_CUDA_EMULATOR)
  return()
endif()
# The GEMM launchers (matmul.cu, the handle, the plan cache), which the kernels' own emulated
# tests leave out, translated like the other kernels; their cuBLASLt calls land in emu_cublaslt.cc.
set(emu_blas_out "${CMAKE_CURRENT_BINARY_DIR}/emulated_blas")
set(emu_blas_sources "")
foreach(file matmul.cu cublas_handle.cu gemm_plan_cache.cu gemm_plan_cache.cuh)
  string(REGEX REPLACE "\\.cu$" ".cc" name ${file})
  set(output ${emu_blas_out}/kernels/cuda/${name})
  add_custom_command(OUTPUT ${output}
                     COMMAND ${CMAKE_COMMAND} -E make_directory ${emu_blas_out}/kernels/cuda
                     COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/cuda/emulator/translate_cu.py
                             ${PROJECT_SOURCE_DIR}/kernels/cuda/${file} ${output}
                     DEPENDS ${PROJECT_SOURCE_DIR}/kernels/cuda/${file}
                             ${PROJECT_SOURCE_DIR}/tests/cuda/emulator/translate_cu.py
                     COMMENT "Translating kernels/cuda/${file} for the CUDA emulation" VERBATIM)
  list(APPEND emu_blas_sources ${output})
endforeach()
set_source_files_properties(${emu_blas_sources} PROPERTIES COMPILE_OPTIONS
                            "-include;${PROJECT_SOURCE_DIR}/tests/cuda/emulator/emu.h")

# The emulated twin of tessera_runtime_cuda: the same runtime sources, the emulated kernels.
add_library(tessera_runtime_cuda_emulated STATIC ${TESSERA_RUNTIME_CUDA_SOURCES} ${emu_blas_sources}
            ${PROJECT_SOURCE_DIR}/tests/cuda/emulator/emu_cublaslt.cc
            ${PROJECT_SOURCE_DIR}/tests/cuda/emulator/emu_runtime_device.cc
            ${PROJECT_SOURCE_DIR}/tests/cuda/emulator/emu_nccl.cc)
# The translated headers (common.cuh in the emulator's output folder, the plan cache's in ours)
# shadow the originals.
target_include_directories(tessera_runtime_cuda_emulated BEFORE PRIVATE ${CMAKE_CURRENT_BINARY_DIR}/emulated
                                                                        ${emu_blas_out})
target_include_directories(tessera_runtime_cuda_emulated PUBLIC ${TESSERA_NCCL_INCLUDE_DIR})
target_link_libraries(tessera_runtime_cuda_emulated PUBLIC tessera_runtime tessera_cuda_kernels_emulated)

add_executable(tessera_cuda_backend_emulated_tests ${backend_test_sources})
target_link_libraries(tessera_cuda_backend_emulated_tests PRIVATE tessera_runtime_cuda_emulated Catch2::Catch2)
add_test(NAME cuda.backend_emulated COMMAND tessera_cuda_backend_emulated_tests)
set_tests_properties(cuda.backend_emulated PROPERTIES LABELS cuda TIMEOUT 300)

# The NCCL communicator: nccl_check.cc on the emulated NCCL (emu_nccl.cc, MPI underneath: a test
# double for the transport only) under mpirun -np 2, every operation and the watchdog's timeout.
# About 5 s together; the real NCCL build (tessera_nccl_check, defined above the emulator part
# of this file) is for the device check.
add_executable(tessera_nccl_emulated_check ${CMAKE_CURRENT_LIST_DIR}/nccl_check.cc)
target_link_libraries(tessera_nccl_emulated_check PRIVATE tessera_runtime_cuda_emulated)
add_test(NAME cuda.nccl_emulated.ops
         COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${TESSERA_MPIEXEC_FLAGS}
                 $<TARGET_FILE:tessera_nccl_emulated_check> ops)
add_test(NAME cuda.nccl_emulated.timeout
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_nccl_timeout.py ${MPIEXEC_EXECUTABLE}
                 ${MPIEXEC_NUMPROC_FLAG} 2 ${TESSERA_MPIEXEC_FLAGS} -- $<TARGET_FILE:tessera_nccl_emulated_check>)
set_tests_properties(cuda.nccl_emulated.ops cuda.nccl_emulated.timeout PROPERTIES LABELS "cuda;mpi" TIMEOUT 180
                     RUN_SERIAL TRUE ENVIRONMENT "OMPI_MCA_rmaps_base_oversubscribe=1")

# The real CUDA build links the CUDA runtime, cuBLASLt and NCCL into `tessera` (not the emulation).
add_test(NAME cuda.tessera_links_cuda_libraries
         COMMAND sh -c "ldd \"$1\" > \"$2\" && grep -q 'libcudart\\.so' \"$2\" && grep -q 'libcublasLt\\.so' \"$2\" && grep -q 'libnccl\\.so' \"$2\" || { cat \"$2\"; exit 1; }"
                 ldd_check $<TARGET_FILE:tessera> ${CMAKE_CURRENT_BINARY_DIR}/tessera_ldd.txt)
set_tests_properties(cuda.tessera_links_cuda_libraries PROPERTIES LABELS cuda TIMEOUT 30)

# train.device = cuda where no GPU is visible: one line, exit 1, before any work; under mpirun
# the ranks agree and the job prints it once. (A build without CUDA says so instead: tested by
# tests/unit/test_device_storage.cc on the pure choice.)
set(refusal_args train ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml --set train.device=cuda
                 --set data.path=${PROJECT_SOURCE_DIR}/data/tinyshakespeare.txt)
set(no_gpu_line "tessera: error: train.device = cuda: no CUDA device is visible to rank 0 (CUDA_VISIBLE_DEVICES=)")
add_test(NAME cuda.refuse_without_gpu.np1
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_device_refusal.py --expect ${no_gpu_line}
                 -- $<TARGET_FILE:tessera> ${refusal_args})
add_test(NAME cuda.refuse_without_gpu.np2
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_device_refusal.py --expect ${no_gpu_line}
                 -- ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${TESSERA_MPIEXEC_FLAGS}
                 $<TARGET_FILE:tessera> ${refusal_args})
set_tests_properties(cuda.refuse_without_gpu.np1 cuda.refuse_without_gpu.np2 PROPERTIES LABELS "cuda;mpi"
                     TIMEOUT 120 RUN_SERIAL TRUE WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     ENVIRONMENT "CUDA_VISIBLE_DEVICES=;OMPI_MCA_rmaps_base_oversubscribe=1")

# `tessera` on the emulated CUDA runtime (one emulated device): the refusal of more ranks on a
# node than GPUs, through the real command line under mpirun.
add_executable(tessera_emulated ${PROJECT_SOURCE_DIR}/launcher/main.cc)
set_target_properties(tessera_emulated PROPERTIES TESSERA_EMULATED ON)
target_link_libraries(tessera_emulated PRIVATE tessera_cli tessera_device_runtime)
add_test(NAME cuda.refuse_more_ranks_than_gpus
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_device_refusal.py
                 --expect "tessera: error: train.device = cuda: 2 ranks on this node but 1 CUDA device is visible (one GPU per rank)"
                 -- ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${TESSERA_MPIEXEC_FLAGS}
                 $<TARGET_FILE:tessera_emulated> ${refusal_args}
         WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(cuda.refuse_more_ranks_than_gpus PROPERTIES LABELS "cuda;mpi" TIMEOUT 120 RUN_SERIAL TRUE
                     ENVIRONMENT "OMPI_MCA_rmaps_base_oversubscribe=1")

# Training on train.device = cuda through the emulated build (tessera_emulated: the real .cu
# kernels on the fiber emulator, cuBLASLt on the CPU GEMM, NCCL a test double over MPI): the
# tiny GPT's first 10 steps (2 microbatches of 1 x 16 tokens; the emulation is slow) on one
# emulated GPU against the CPU fp32 run, and tp 2 on two emulated GPUs
# (TESSERA_EMU_DEVICES=2, one per rank) against the one-GPU run, which the first test records.
# The tolerances are argued in docs/cuda.md ("Training on the GPU").
set(cuda_train_reference ${CMAKE_CURRENT_BINARY_DIR}/cuda_train_np1.jsonl)
set(cuda_invariance ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_invariance.py
    --tessera $<TARGET_FILE:tessera_emulated> --mpirun ${MPIEXEC_EXECUTABLE})
# Two emulated GPUs stopped at step 3 and resumed (with a ZeRO stage added per test).
set(cuda_zero_resume ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_resume.py
    --tessera $<TARGET_FILE:tessera_emulated> --mpirun ${MPIEXEC_EXECUTABLE}
    --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml --np 2 --steps 6 --stop 3
    --set train.device=cuda --set train.micro_batch_size=1 --set train.global_batch_size=2
    --set train.peak_tflops=1)
# The tied Llama (GQA, RMSNorm, SwiGLU, rotary, head tied to the embedding), small microbatches.
set(cuda_llama_tied --config ${PROJECT_SOURCE_DIR}/configs/tests/llama_tiny.yaml
    --common train.peak_tflops=1 --common train.micro_batch_size=1
    --common model.untie_embeddings_and_output_weights=false)
set(cuda_train_args ${cuda_invariance}
    --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml --steps 10 --common train.peak_tflops=1
    --common train.micro_batch_size=1 --common train.global_batch_size=2)
add_test(NAME cuda.train_emulated.reference
         COMMAND ${cuda_train_args} --np 1 --base-set train.device=cuda --reference-out ${cuda_train_reference}
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cuda.train_emulated.reference PROPERTIES FIXTURES_SETUP cuda_train_reference)
add_test(NAME cuda.train_emulated.vs_cpu
         COMMAND ${cuda_train_args} --np 1 --reference ${cuda_train_reference} --rtol 1e-5
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
add_test(NAME cuda.train_emulated.tp2
         COMMAND ${cuda_train_args} --np 2 --reference ${cuda_train_reference} --rtol 1e-5
                 --set parallel.tensor_model_parallel_size=2 --set train.device=cuda
                 --host-waits 1
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cuda.train_emulated.vs_cpu cuda.train_emulated.tp2 PROPERTIES FIXTURES_REQUIRED cuda_train_reference)
# The Llama family (GQA, RMSNorm, SwiGLU, rotary, the head tied to the embedding) on two emulated
# GPUs under tp 2 with sequence parallelism, against the CPU fp32 run on one rank, 6 steps at the
# same tolerance.
add_test(NAME cuda.train_emulated.llama_tied_tp2_sp
         COMMAND ${cuda_invariance}
                 ${cuda_llama_tied} --steps 6 --rtol 1e-5 --common train.global_batch_size=2
                 --np 2 --set train.device=cuda --set parallel.tensor_model_parallel_size=2
                 --set parallel.sequence_parallel=true
                 --host-waits 1
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
# Full recompute (the stage executor's path: each chunk's forward rerun before its backward) on
# one emulated GPU against the one-GPU run without it.
add_test(NAME cuda.train_emulated.recompute_full
         COMMAND ${cuda_train_args} --np 1 --reference ${cuda_train_reference} --rtol 1e-5
                 --set train.device=cuda --set parallel.recompute=full
                 --host-waits 1
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
# Selective recompute (the attention probabilities dropped after forward, recomputed in backward).
add_test(NAME cuda.train_emulated.recompute_selective
         COMMAND ${cuda_train_args} --np 1 --reference ${cuda_train_reference} --rtol 1e-5
                 --set train.device=cuda --set parallel.recompute=selective
                 --host-waits 1
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cuda.train_emulated.recompute_full cuda.train_emulated.recompute_selective PROPERTIES
                     FIXTURES_REQUIRED cuda_train_reference)
# dp 2 with ZeRO-1 on two emulated GPUs against the one-GPU run.
add_test(NAME cuda.train_emulated.dp2_zero1
         COMMAND ${cuda_train_args} --np 2 --reference ${cuda_train_reference} --rtol 1e-5
                 --set train.device=cuda --set parallel.zero_stage=1
                 --host-waits 1
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cuda.train_emulated.dp2_zero1 PROPERTIES FIXTURES_REQUIRED cuda_train_reference)
# Pipeline parallelism over NCCL's stream-ordered send/recv (the emulated sends are synchronous,
# as NCCL's, so a receive issued ahead of its send hangs here too): pp 2 with 1F1B against the
# one-GPU run, and the tied Llama under the interleaved schedule (4 microbatches: a steady state of
# forward/backward pairs) against the CPU fp32 run on one rank, 4 steps.
add_test(NAME cuda.train_emulated.pp2
         COMMAND ${cuda_train_args} --np 2 --reference ${cuda_train_reference} --rtol 1e-5
                 --set train.device=cuda --set parallel.pipeline_model_parallel_size=2
                 --host-waits 1
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cuda.train_emulated.pp2 PROPERTIES FIXTURES_REQUIRED cuda_train_reference)
add_test(NAME cuda.train_emulated.llama_tied_pp2_interleaved
         COMMAND ${cuda_invariance}
                 ${cuda_llama_tied} --steps 4 --rtol 1e-5 --common train.global_batch_size=4
                 --np 2 --set train.device=cuda --set parallel.pipeline_model_parallel_size=2
                 --set parallel.virtual_stages=2 --set parallel.schedule=interleaved
                 --host-waits 1
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
# Gradients all-reduced in bf16 (parallel.grad_reduce_dtype) on two emulated GPUs against the same
# on two CPU ranks: the same roundings, 6 steps at 1e-5.
add_test(NAME cuda.train_emulated.dp2_bf16_reduce
         COMMAND ${cuda_invariance}
                 --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml --steps 6 --rtol 1e-5
                 --common train.peak_tflops=1 --common train.micro_batch_size=1 --common train.global_batch_size=2
                 --common parallel.grad_reduce_dtype=bf16 --base-np 2 --np 2 --set train.device=cuda
                 --host-waits 1
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
# fp16 on one emulated GPU (cuBLASLt fp16 GEMMs, the CUDA casts, loss scaling through the backend's
# sums of squares): against the CPU fp16 run, 6 steps at 1e-4 (both round the same fp32 values to
# fp16 at the same points; a value whose fp32 sums differ in the last bits may round the other
# way, 2^-11 of that element; measured 6.9e-7), and the loss scaler's rules (check_loss_scaling.py:
# a forced overflow skips the step and halves the scale, growth after the window).
add_test(NAME cuda.train_emulated.fp16_vs_cpu
         COMMAND ${cuda_invariance}
                 --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml --steps 6 --rtol 1e-4
                 --common train.peak_tflops=1 --common train.micro_batch_size=1 --common train.global_batch_size=2
                 --common train.precision=fp16 --np 1 --set train.device=cuda
                 --host-waits 2
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
add_test(NAME cuda.train_emulated.fp16_loss_scaling
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/precision/check_loss_scaling.py
                 --tessera $<TARGET_FILE:tessera_emulated> --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
                 --steps 9 --no-endless --set train.device=cuda --set train.micro_batch_size=1
                 --set train.global_batch_size=2 --set train.peak_tflops=1
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
# ZeRO-2/3 on two emulated GPUs (units, shards, casts and sums on the device): the tied Llama at
# stage 2 against the CPU fp32 run on one rank (1e-5); at stage 3 in bf16 with bf16 gathers and
# gradient reduction against the same on two CPU ranks (1e-3: the two backends round to bf16 at
# different points of attention and the fused ops; measured 3.3e-5); and a stage-3 run stopped at
# step 3 and resumed from its dp-sharded checkpoint (written from host copies, loaded one unit at
# a time through them): bit-identical.
add_test(NAME cuda.train_emulated.llama_tied_zero2
         COMMAND ${cuda_invariance}
                 ${cuda_llama_tied} --steps 4 --rtol 1e-5 --common train.global_batch_size=4
                 --np 2 --set train.device=cuda --set parallel.zero_stage=2 --host-waits 1
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
add_test(NAME cuda.train_emulated.llama_tied_zero3_bf16
         COMMAND ${cuda_invariance}
                 ${cuda_llama_tied} --steps 4 --rtol 1e-3 --common train.global_batch_size=4 --common train.precision=bf16
                 --common parallel.grad_reduce_dtype=bf16 --base-np 2 --base-set parallel.zero_stage=3
                 --np 2 --set train.device=cuda --set parallel.zero_stage=3 --host-waits 1
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
add_test(NAME cuda.train_emulated.zero3_resume
         COMMAND ${cuda_zero_resume} --set parallel.zero_stage=3
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
# DiLoCo between two emulated GPUs (the outer state on the host, the parameters copied over at
# each sync, the outer all-reduce over MPI) against the same on two CPU ranks, 6 steps of H = 3:
# the losses (each replica's gradient norm is its own) at 1e-5, one host wait per step and two at
# a sync (the fragment's copy to the host).
add_test(NAME cuda.train_emulated.diloco_dp2
         COMMAND ${cuda_invariance}
                 --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml --steps 6 --rtol 1e-5 --keys loss,val_loss
                 --common train.peak_tflops=1 --common train.micro_batch_size=1 --common train.global_batch_size=4
                 --base-np 2 --base-set parallel.data_parallel_sync=diloco --base-set parallel.sync_interval=3
                 --np 2 --set parallel.data_parallel_sync=diloco --set parallel.sync_interval=3
                 --set train.device=cuda --host-waits 1,1,2
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
# ZeRO-1 on two emulated GPUs (the moments and gradient shard on the device), stopped at step 3
# with a dp-sharded checkpoint written from host copies and resumed: bit-identical to the run
# that was not stopped.
add_test(NAME cuda.train_emulated.zero1_resume
         COMMAND ${cuda_zero_resume} --set parallel.zero_stage=1
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cuda.train_emulated.reference cuda.train_emulated.vs_cpu cuda.train_emulated.tp2
                     cuda.train_emulated.llama_tied_tp2_sp cuda.train_emulated.recompute_full
                     cuda.train_emulated.recompute_selective
                     cuda.train_emulated.dp2_zero1 cuda.train_emulated.dp2_bf16_reduce
                     cuda.train_emulated.zero1_resume cuda.train_emulated.pp2
                     cuda.train_emulated.llama_tied_pp2_interleaved cuda.train_emulated.fp16_vs_cpu
                     cuda.train_emulated.fp16_loss_scaling cuda.train_emulated.diloco_dp2
                     cuda.train_emulated.llama_tied_zero2 cuda.train_emulated.llama_tied_zero3_bf16
                     cuda.train_emulated.zero3_resume PROPERTIES
                     LABELS "cuda;mpi" TIMEOUT 300 RUN_SERIAL TRUE
                     ENVIRONMENT "TESSERA_EMU_DEVICES=2;OMPI_MCA_rmaps_base_oversubscribe=1")

# A feature the trainer does not run on the GPU yet is refused in one line naming the key, before
# any work, not run on the CPU instead (runtime/train/runtime_support.cc has the list).
add_test(NAME cuda.refuse_unported_feature
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_device_refusal.py
                 --expect "tessera: error: ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml: prune.target_sparsity = 0.5 with train.device = cuda: not implemented on the GPU yet"
                 -- $<TARGET_FILE:tessera_emulated> ${refusal_args} --set prune.target_sparsity=0.5 --set prune.end_step=10
         WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(cuda.refuse_unported_feature PROPERTIES LABELS cuda TIMEOUT 60)
