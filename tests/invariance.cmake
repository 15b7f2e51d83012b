# Layout-invariance tests: each runs a tiny config on one rank and under a parallel layout
# with mpirun, and requires the same loss and grad norm at every step (tests/check_invariance.py).
find_package(Python3 REQUIRED COMPONENTS Interpreter)

function(tessera_add_invariance_test name np config)
  add_test(NAME invariance.${name}
           COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_invariance.py
                   --tessera $<TARGET_FILE:tessera> --mpirun ${MPIEXEC_EXECUTABLE}
                   --config ${PROJECT_SOURCE_DIR}/configs/tests/${config}.yaml --np ${np} ${ARGN}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  # Oversubscribed mpirun jobs on 2 cores must not run next to each other.
  set_tests_properties(invariance.${name} PROPERTIES RUN_SERIAL TRUE TIMEOUT 600 LABELS mpi)
endfunction()

# Data parallelism: buckets small enough to split layers, with and without ZeRO-1.
tessera_add_invariance_test(gpt.dp2 2 gpt_tiny --set parallel.bucket_mb=0.01)
tessera_add_invariance_test(gpt.dp4 4 gpt_tiny --set parallel.bucket_mb=0.003)
tessera_add_invariance_test(gpt.dp4.zero1 4 gpt_tiny --set parallel.zero_stage=1)
tessera_add_invariance_test(gpt.dp2.zero1 2 gpt_tiny --set parallel.zero_stage=1)
tessera_add_invariance_test(mlp.dp2 2 mlp_tiny --set parallel.bucket_mb=0.002)
tessera_add_invariance_test(mlp.dp4.zero1 4 mlp_tiny --set parallel.zero_stage=1)

# Tensor parallelism: the communication pairs and gathered gradients (the world is one tp
# group), then whole training runs, alone and combined with data parallelism.
add_executable(tessera_mpi_tp_tests mpi/tp_tests.cc)
target_link_libraries(tessera_mpi_tp_tests PRIVATE tessera_runtime)
target_include_directories(tessera_mpi_tp_tests PRIVATE ${PROJECT_SOURCE_DIR})
foreach(np 2 4)
  tessera_add_mpi_test(mpi.tp.np${np} ${np} tessera_mpi_tp_tests)
endforeach()
foreach(model gpt mlp)
  tessera_add_invariance_test(${model}.tp2 2 ${model}_tiny --set parallel.tensor_model_parallel_size=2)
  tessera_add_invariance_test(${model}.tp4 4 ${model}_tiny --set parallel.tensor_model_parallel_size=4)
  tessera_add_invariance_test(${model}.tp2.dp2 4 ${model}_tiny --set parallel.tensor_model_parallel_size=2
                              --set parallel.bucket_mb=0.01)
  # Sequence parallelism: LayerNorm/residual rows split over tp.
  tessera_add_invariance_test(${model}.tp2.sp 2 ${model}_tiny --set parallel.tensor_model_parallel_size=2
                              --set parallel.sequence_parallel=true)
  tessera_add_invariance_test(${model}.tp4.sp 4 ${model}_tiny --set parallel.tensor_model_parallel_size=4
                              --set parallel.sequence_parallel=true)
  tessera_add_invariance_test(${model}.tp2.dp2.sp 4 ${model}_tiny --set parallel.tensor_model_parallel_size=2
                              --set parallel.sequence_parallel=true --set parallel.zero_stage=1)
endforeach()

# Pipeline parallelism: each schedule, recompute on and off, and all three kinds of
# parallelism together on 8 ranks.
set(pp2 --set parallel.pipeline_model_parallel_size=2)
tessera_add_invariance_test(gpt.pp2.1f1b 2 gpt_tiny ${pp2})
tessera_add_invariance_test(gpt.pp2.gpipe 2 gpt_tiny ${pp2} --set parallel.schedule=gpipe)
tessera_add_invariance_test(gpt.pp2.interleaved 2 gpt_tiny ${pp2} --set parallel.schedule=interleaved
                            --set parallel.virtual_stages=2)
tessera_add_invariance_test(gpt.pp4.1f1b.recompute_full 4 gpt_tiny --set parallel.pipeline_model_parallel_size=4
                            --set parallel.recompute=full)
tessera_add_invariance_test(gpt.pp4.gpipe 4 gpt_tiny --set parallel.pipeline_model_parallel_size=4
                            --set parallel.schedule=gpipe)
tessera_add_invariance_test(gpt.pp2.recompute_selective 2 gpt_tiny ${pp2} --set parallel.recompute=selective)
tessera_add_invariance_test(gpt.pp2.partition 2 gpt_tiny ${pp2} --set "parallel.partition=[1,3]")
tessera_add_invariance_test(gpt.dp2.tp2.pp2 8 gpt_tiny ${pp2} --set parallel.tensor_model_parallel_size=2)
tessera_add_invariance_test(gpt.dp2.tp2.pp2.sp.zero1.recompute 8 gpt_tiny ${pp2}
                            --set parallel.tensor_model_parallel_size=2 --set parallel.sequence_parallel=true
                            --set parallel.zero_stage=1 --set parallel.recompute=full)
tessera_add_invariance_test(mlp.pp2 2 mlp_tiny ${pp2})
tessera_add_invariance_test(mlp.pp2.interleaved 2 mlp_tiny ${pp2} --set parallel.schedule=interleaved
                            --set parallel.virtual_stages=2)
tessera_add_invariance_test(mlp.pp4.recompute_full 4 mlp_tiny --set parallel.pipeline_model_parallel_size=4
                            --set parallel.recompute=full)
tessera_add_invariance_test(mlp.dp2.tp2.pp2 8 mlp_tiny ${pp2} --set parallel.tensor_model_parallel_size=2)

add_test(NAME trace.pipeline
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_trace.py --tessera $<TARGET_FILE:tessera>
                 --mpirun ${MPIEXEC_EXECUTABLE} --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(trace.pipeline PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS mpi)

# Exact resume: stop at step 8, resume from the checkpoint, compare with the uninterrupted run.
function(tessera_add_resume_test name)
  add_test(NAME resume.${name}
           COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_resume.py
                   --tessera $<TARGET_FILE:tessera> --mpirun ${MPIEXEC_EXECUTABLE}
                   --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml ${ARGN}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(resume.${name} PROPERTIES RUN_SERIAL TRUE TIMEOUT 600 LABELS mpi)
endfunction()
tessera_add_resume_test(same_layout.bit_identical)
tessera_add_resume_test(dp2.tp2.zero1.bit_identical --np 4 --set parallel.tensor_model_parallel_size=2
                        --set parallel.zero_stage=1)
tessera_add_resume_test(resharded.dp2_tp2_zero1.to.pp2 --np 4 --set parallel.tensor_model_parallel_size=2
                        --set parallel.zero_stage=1 --resume-np 2 --resume-set parallel.pipeline_model_parallel_size=2
                        --rtol 1e-5)
tessera_add_resume_test(resharded.pp2.to.tp4.sp --np 2 --set parallel.pipeline_model_parallel_size=2 --resume-np 4
                        --resume-set parallel.tensor_model_parallel_size=4 --resume-set parallel.sequence_parallel=true
                        --rtol 1e-5)
tessera_add_resume_test(resharded.zero1.to.no_zero --np 2 --set parallel.zero_stage=1 --resume-np 1 --resume-set
                        parallel.zero_stage=0 --rtol 1e-5)
tessera_add_resume_test(resharded.pp2.to.pp4 --np 2 --set parallel.pipeline_model_parallel_size=2 --resume-np 4
                        --resume-set parallel.pipeline_model_parallel_size=4 --rtol 1e-5)
tessera_add_resume_test(resharded.pp4.to.dp2.zero1 --np 4 --set parallel.pipeline_model_parallel_size=4
                        --resume-np 2 --resume-set parallel.zero_stage=1 --rtol 1e-5)

# SIGUSR1 (Slurm's warning before the time limit) saves a checkpoint and exits 0.
add_test(NAME signal.sigusr1_saves_and_exits
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_signal.py --tessera $<TARGET_FILE:tessera>
                 --mpirun ${MPIEXEC_EXECUTABLE} --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(signal.sigusr1_saves_and_exits PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS mpi)
tessera_add_invariance_test(gpt.dp2.recompute_full 2 gpt_tiny --set parallel.recompute=full)

# A diverging run: train.on_nan abort stops every rank clearly, skip drops and counts updates.
add_test(NAME nan.abort_and_skip
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_nan.py --tessera $<TARGET_FILE:tessera>
                 --mpirun ${MPIEXEC_EXECUTABLE} --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(nan.abort_and_skip PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS mpi)
