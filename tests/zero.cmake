# ZeRO stages 2 and 3 (runtime/train/zero_units.h). Each invariance test is one 1-rank
# reference run plus one mpirun of the tiny GPT for 20 steps (fp32, 1e-5). The layouts are
# combined so that 8 launches cover zero 2 and 3 at dp 2, 4 and 8, with tp 2 (+ sp), with
# pp 2, with tp 2 x pp 2 (+ sp + full recompute), and prefetch depths 0, 1 and 2. All 11 tests
# of this file took 120 s together on the shared 2-core machine (load ~13), 8-15 s each.
tessera_add_invariance_test(gpt.dp2.zero2 2 gpt_tiny --set parallel.zero_stage=2)
tessera_add_invariance_test(gpt.dp4.zero3 4 gpt_tiny --set parallel.zero_stage=3 --set parallel.zero_prefetch=2)
tessera_add_invariance_test(gpt.dp8.zero3.mb1 8 gpt_tiny --set parallel.zero_stage=3 --set train.micro_batch_size=1
                            --set parallel.zero_prefetch=0)
tessera_add_invariance_test(gpt.dp4.zero2.mb2 4 gpt_tiny --set parallel.zero_stage=2 --set train.micro_batch_size=2)
tessera_add_invariance_test(gpt.tp2.dp2.sp.zero3 4 gpt_tiny --set parallel.tensor_model_parallel_size=2
                            --set parallel.sequence_parallel=true --set parallel.zero_stage=3)
tessera_add_invariance_test(gpt.pp2.dp2.zero3 4 gpt_tiny --set parallel.pipeline_model_parallel_size=2
                            --set parallel.zero_stage=3)
tessera_add_invariance_test(gpt.dp2.tp2.pp2.sp.zero2.recompute 8 gpt_tiny --set parallel.pipeline_model_parallel_size=2
                            --set parallel.tensor_model_parallel_size=2 --set parallel.sequence_parallel=true
                            --set parallel.zero_stage=2 --set parallel.recompute=full)
tessera_add_invariance_test(gpt.dp2.tp2.pp2.zero3 8 gpt_tiny --set parallel.pipeline_model_parallel_size=2
                            --set parallel.tensor_model_parallel_size=2 --set parallel.zero_stage=3)

# Resume and reshard across ZeRO stages and layouts: ZeRO-3 dp 4 -> ZeRO-1 dp 2 x tp 2 and back,
# and an exact resume under ZeRO-3.
tessera_add_resume_test(zero3.dp4.bit_identical --np 4 --set parallel.zero_stage=3)
tessera_add_resume_test(resharded.zero3_dp4.to.zero1_dp2_tp2 --np 4 --set parallel.zero_stage=3 --resume-np 4
                        --resume-set parallel.zero_stage=1 --resume-set parallel.tensor_model_parallel_size=2 --rtol 1e-5)
tessera_add_resume_test(resharded.zero1_dp2_tp2.to.zero3_dp4 --np 4 --set parallel.zero_stage=1
                        --set parallel.tensor_model_parallel_size=2 --resume-np 4 --resume-set parallel.zero_stage=3
                        --rtol 1e-5)

# The Llama block through the same units (GQA, RMSNorm, SwiGLU), tp 2 x dp 2 at ZeRO-3.
tessera_add_invariance_test(llama.tp2.dp2.zero3 4 llama_tiny --set parallel.tensor_model_parallel_size=2
                            --set parallel.zero_stage=3)

# A ZeRO-3 checkpoint check: tests/checkpoint/SCRIPT on the tiny GPT under mpirun.
function(tessera_add_zero3_checkpoint_test name script timeout)
  add_test(NAME checkpoint.zero3.${name}
           COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/checkpoint/${script}
                   --tessera $<TARGET_FILE:tessera> --mpirun ${MPIEXEC_EXECUTABLE}
                   --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(checkpoint.zero3.${name} PROPERTIES RUN_SERIAL TRUE TIMEOUT ${timeout} LABELS mpi)
endfunction()
# Dp-sharded checkpoints: ZeRO-3 dp 2 writes one file per dp rank; a deleted or truncated one
# fails the resume with one line naming the parameter and the element range it no longer covers.
tessera_add_zero3_checkpoint_test(sharded_coverage check_sharded_coverage.py 120)
# ZeRO-3 builds its layers one at a time and resumes one unit at a time: neither the set-up nor
# a resume holds the model whole (the set-up's peak not above the steps', a resume within 0.1 W).
tessera_add_zero3_checkpoint_test(memory_bounded check_zero3_memory.py 300)
