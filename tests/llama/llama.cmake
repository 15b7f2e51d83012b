# Multi-rank tests of the llama architecture (configs/tests/llama_tiny.yaml: GQA, 8 heads in 4
# groups): the same losses on one rank and under a small set of layouts that together use
# every parallel feature, and checkpoints resumed under another layout. About 2.5 minutes on
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
# Tied weights across pipeline stages (the embedding on the first, the head's copy on the last,
# their gradients summed each step): pp 2, tp 2 x pp 2 interleaved, and dp 2 x pp 2 with ZeRO-1.
tessera_add_invariance_test(llama.tied.pp2 2 llama_tiny ${llama_pp2}
                            --common model.untie_embeddings_and_output_weights=false)
tessera_add_invariance_test(llama.tied.tp2.pp2.interleaved 4 llama_tiny ${llama_pp2} ${llama_tp2}
                            --set parallel.schedule=interleaved --set parallel.virtual_stages=2
                            --common model.untie_embeddings_and_output_weights=false)
tessera_add_invariance_test(llama.tied.dp2.pp2.zero1 4 llama_tiny ${llama_pp2} --set parallel.zero_stage=1
                            --common model.untie_embeddings_and_output_weights=false)
# ZeRO-2/3 with tied weights: the table is a unit of its own, gathered for the embedding and the
# head and reduce-scattered after the embedding's backward (one stage); across stages both
# copies are units of their own whose blocks are summed (runtime/train/zero_units.h).
tessera_add_invariance_test(llama.tied.tp2.dp2.zero3 4 llama_tiny ${llama_tp2} --set parallel.zero_stage=3
                            --common model.untie_embeddings_and_output_weights=false)
tessera_add_invariance_test(llama.tied.dp2.pp2.zero2 4 llama_tiny ${llama_pp2} --set parallel.zero_stage=2
                            --common model.untie_embeddings_and_output_weights=false)

add_test(NAME resume.llama.resharded.tp2_pp2.to.dp2_tp2_sp
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_resume.py --tessera $<TARGET_FILE:tessera>
                 --mpirun ${MPIEXEC_EXECUTABLE} --config ${PROJECT_SOURCE_DIR}/configs/tests/llama_tiny.yaml
                 --np 4 ${llama_tp2} ${llama_pp2} --resume-np 4 --resume-set parallel.tensor_model_parallel_size=2
                 --resume-set parallel.sequence_parallel=true --rtol 1e-5
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(resume.llama.resharded.tp2_pp2.to.dp2_tp2_sp PROPERTIES RUN_SERIAL TRUE TIMEOUT 600 LABELS mpi)
# A tied checkpoint saved under pp 2 (the table written once, by the first stage) resumed under tp 2.
add_test(NAME resume.llama.tied.pp2.to.tp2
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_resume.py --tessera $<TARGET_FILE:tessera>
                 --mpirun ${MPIEXEC_EXECUTABLE} --config ${PROJECT_SOURCE_DIR}/configs/tests/llama_tiny.yaml
                 --np 2 ${llama_pp2} --set model.untie_embeddings_and_output_weights=false --resume-np 2
                 --resume-set parallel.tensor_model_parallel_size=2
                 --resume-set model.untie_embeddings_and_output_weights=false --rtol 1e-5
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(resume.llama.tied.pp2.to.tp2 PROPERTIES RUN_SERIAL TRUE TIMEOUT 600 LABELS mpi)
# The same across ZeRO stages: tied under dp 2 x pp 2 at ZeRO-3 (each dp rank writes its blocks,
# the copy none), resumed under dp 2 x tp 2 at ZeRO-2 with the table shared on one stage.
add_test(NAME resume.llama.tied.dp2_pp2_zero3.to.dp2_tp2_zero2
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_resume.py --tessera $<TARGET_FILE:tessera>
                 --mpirun ${MPIEXEC_EXECUTABLE} --config ${PROJECT_SOURCE_DIR}/configs/tests/llama_tiny.yaml
                 --np 4 ${llama_pp2} --set parallel.zero_stage=3 --set model.untie_embeddings_and_output_weights=false
                 --resume-np 4 --resume-set parallel.tensor_model_parallel_size=2 --resume-set parallel.zero_stage=2
                 --resume-set model.untie_embeddings_and_output_weights=false --rtol 1e-5
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(resume.llama.tied.dp2_pp2_zero3.to.dp2_tp2_zero2 PROPERTIES RUN_SERIAL TRUE TIMEOUT 600
                     LABELS mpi)
