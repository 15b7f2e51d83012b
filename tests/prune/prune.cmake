# `tessera prune` end to end (tests/prune/check_prune.py): prune a tiny GPT, fine-tune from it
# under tp = 2, ZeRO-1 and a pp = 2 resume with mpirun, check the masks hold; structured
# pruning trains under tp = 2; bad arguments exit 1 with one line. The single-process parts
# (exact counts, 2:4 groups, AdamW, checkpoints, logit equality) are unit tests
# (tests/unit/test_prune*.cc).
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME prune.end_to_end
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_prune.py --tessera $<TARGET_FILE:tessera>
                 --mpirun ${MPIEXEC_EXECUTABLE} --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(prune.end_to_end PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS mpi SKIP_RETURN_CODE 77)

# Llama structured pruning (~25 s): groups, heads within groups and SwiGLU channels against
# the masked original in transformers and onnxruntime; the pruned model trains under tp 2.
add_test(NAME prune.llama
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_prune_llama.py --tessera $<TARGET_FILE:tessera>
                 --mpirun ${MPIEXEC_EXECUTABLE}
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(prune.llama PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS mpi)

# Gradual pruning (prune.*) in the training loop: the same masks and losses on one rank and
# under tp 2, pp 2 and dp 2 + ZeRO-1 (global scope) and tp 2 x pp 2 (layer scope); a resume in the middle of the schedule continues the
# uninterrupted run, bit for bit under the same layout, within 1e-5 resharded from tp 2 to pp 2. Exact counts per re-pruning are unit tests
# (tests/unit/test_prune_gradual.cc).
set(TESSERA_GRADUAL_PRUNE --set prune.target_sparsity=0.5 --set prune.start_step=2 --set prune.end_step=10
    --set prune.interval=2)
add_test(NAME prune.gradual.layouts
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_gradual.py --tessera $<TARGET_FILE:tessera>
                 --mpirun ${MPIEXEC_EXECUTABLE} --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
                 --steps 12 --sparsity 0.5 --prune prune.target_sparsity=0.5 --prune prune.start_step=2
                 --prune prune.end_step=10 --prune prune.interval=2
                 --layout 2:parallel.tensor_model_parallel_size=2 --layout 2:parallel.pipeline_model_parallel_size=2
                 --layout 2:parallel.zero_stage=1
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(prune.gradual.layouts PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS mpi)
add_test(NAME prune.gradual.layer_scope.tp2_pp2
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_gradual.py --tessera $<TARGET_FILE:tessera>
                 --mpirun ${MPIEXEC_EXECUTABLE} --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
                 --steps 12 --sparsity 0.5 --prune prune.target_sparsity=0.5 --prune prune.start_step=2
                 --prune prune.end_step=10 --prune prune.interval=2 --prune prune.scope=layer
                 --layout 4:parallel.tensor_model_parallel_size=2,parallel.pipeline_model_parallel_size=2
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(prune.gradual.layer_scope.tp2_pp2 PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS mpi)
add_test(NAME prune.gradual.resume
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_resume.py --tessera $<TARGET_FILE:tessera>
                 --mpirun ${MPIEXEC_EXECUTABLE} --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
                 --steps 12 --stop 6 ${TESSERA_GRADUAL_PRUNE}
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(prune.gradual.resume PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS mpi)
add_test(NAME prune.gradual.resume.tp2.to.pp2
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_resume.py --tessera $<TARGET_FILE:tessera>
                 --mpirun ${MPIEXEC_EXECUTABLE} --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
                 --steps 12 --stop 5 --np 2 ${TESSERA_GRADUAL_PRUNE} --set parallel.tensor_model_parallel_size=2
                 --resume-np 2 --resume-set parallel.pipeline_model_parallel_size=2 --rtol 1e-5
                 --resume-set prune.target_sparsity=0.5 --resume-set prune.start_step=2 --resume-set prune.end_step=10
                 --resume-set prune.interval=2
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(prune.gradual.resume.tp2.to.pp2 PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS mpi)
