# Multi-rank tests of the llama architecture (configs/tests/llama_tiny.yaml: GQA, 8 heads in 4
# groups): the same losses on one rank and under a small set of layouts that together use
# every parallel feature, and a checkpoint resumed under another layout. About 2 minutes on
# the 2-core machine (each test trains 20 steps twice).
set(llama_pp2 --set parallel.pipeline_model_parallel_size=2)
set(llama_tp2 --set parallel.tensor_model_parallel_size=2)
tessera_add_invariance_test(llama.tp2.dp2.zero1 4 llama_tiny ${llama_tp2} --set parallel.zero_stage=1
                            --set parallel.bucket_mb=0.01)
tessera_add_invariance_test(llama.tp4.sp 4 llama_tiny --set parallel.tensor_model_parallel_size=4
                            --set parallel.sequence_parallel=true)
tessera_add_invariance_test(llama.pp2.interleaved.recompute_selective 2 llama_tiny ${llama_pp2}
                            --set parallel.schedule=interleaved --set parallel.virtual_stages=2
                            --set parallel.recompute=selective)
tessera_add_invariance_test(llama.dp2.tp2.pp2.sp.zero1.recompute 8 llama_tiny ${llama_pp2} ${llama_tp2}
                            --set parallel.sequence_parallel=true --set parallel.zero_stage=1
                            --set parallel.recompute=full)
# Tied embedding and output weights (one stage), MQA (one group: tp 1 only).
tessera_add_invariance_test(llama.tied.tp2.dp2 4 llama_tiny ${llama_tp2}
                            --common model.untie_embeddings_and_output_weights=false)
tessera_add_invariance_test(llama.mqa.dp2 2 llama_tiny --common model.num_query_groups=1)

add_test(NAME resume.llama.resharded.tp2_pp2.to.dp2_tp2_sp
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_resume.py --tessera $<TARGET_FILE:tessera>
                 --mpirun ${MPIEXEC_EXECUTABLE} --config ${PROJECT_SOURCE_DIR}/configs/tests/llama_tiny.yaml
                 --np 4 ${llama_tp2} ${llama_pp2} --resume-np 4 --resume-set parallel.tensor_model_parallel_size=2
                 --resume-set parallel.sequence_parallel=true --rtol 1e-5
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(resume.llama.resharded.tp2_pp2.to.dp2_tp2_sp PROPERTIES RUN_SERIAL TRUE TIMEOUT 600 LABELS mpi)
