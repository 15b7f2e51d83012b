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
