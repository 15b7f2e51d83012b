# The layout matrix: the GPT trained under every (dp, tp, pp) factorisation of 4 and 8 ranks,
# and under the feature combinations that touch each other's code (ZeRO-1, sequence parallel,
# interleaved and GPipe schedules, selective recompute, with pipeline, data and tensor
# parallelism) and an odd data-parallel size, must give the losses, grad norms and validation
# loss of one rank within 1e-5 relative over 10 steps; each run must also show the layout in its
# own banner, in-flight counts and metrics (tests/check_invariance.py, layout_evidence.py).
# configs/tests/gpt_matrix.yaml says why its size suffices. The one-rank run is made once
# (the fixture) and shared. Cost on the 2 busy cores: 3-7 s a layout, tp 8 13-28 s; 106-116 s
# for the 23 tests.
set(TESSERA_MATRIX_CONFIG ${PROJECT_SOURCE_DIR}/configs/tests/gpt_matrix.yaml)
set(TESSERA_MATRIX_REFERENCE ${CMAKE_CURRENT_BINARY_DIR}/layout_matrix_reference.jsonl)
set(TESSERA_MATRIX_ARGS --tessera $<TARGET_FILE:tessera> --mpirun ${MPIEXEC_EXECUTABLE}
    --config ${TESSERA_MATRIX_CONFIG} --steps 10)

add_test(NAME invariance.matrix.reference
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_invariance.py ${TESSERA_MATRIX_ARGS}
                 --np 1 --reference-out ${TESSERA_MATRIX_REFERENCE}
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(invariance.matrix.reference PROPERTIES FIXTURES_SETUP layout_matrix TIMEOUT 120
                     LABELS mpi RUN_SERIAL TRUE)

# tessera_add_matrix_test(name np overrides...)
function(tessera_add_matrix_test name np)
  set(sets)
  foreach(override ${ARGN})
    list(APPEND sets --set ${override})
  endforeach()
  add_test(NAME invariance.matrix.${name}
           COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_invariance.py ${TESSERA_MATRIX_ARGS}
                   --np ${np} --reference ${TESSERA_MATRIX_REFERENCE} ${sets}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(invariance.matrix.${name} PROPERTIES FIXTURES_REQUIRED layout_matrix RUN_SERIAL TRUE
                       TIMEOUT 300 LABELS mpi)
endfunction()

# Every ordered (dp, tp, pp) with dp * tp * pp = 4 or 8 (6 and 10 of them); dp is what is left.
foreach(world 4 8)
  foreach(tp 1 2 4 8)
    foreach(pp 1 2 4 8)
      math(EXPR rest "${world} % (${tp} * ${pp})")
      if(rest EQUAL 0 AND NOT tp GREATER world AND NOT pp GREATER world)
        math(EXPR dp "${world} / (${tp} * ${pp})")
        tessera_add_matrix_test(dp${dp}.tp${tp}.pp${pp} ${world} parallel.tensor_model_parallel_size=${tp}
                                parallel.pipeline_model_parallel_size=${pp})
      endif()
    endforeach()
  endforeach()
endforeach()

# Features across kinds of parallelism, and dp 3.
tessera_add_matrix_test(dp2.pp2.zero1 4 parallel.pipeline_model_parallel_size=2 parallel.zero_stage=1)
tessera_add_matrix_test(tp2.pp2.sp 4 parallel.tensor_model_parallel_size=2 parallel.pipeline_model_parallel_size=2
                        parallel.sequence_parallel=true)
tessera_add_matrix_test(dp2.tp2.pp2.interleaved 8 parallel.tensor_model_parallel_size=2
                        parallel.pipeline_model_parallel_size=2 parallel.schedule=interleaved parallel.virtual_stages=2)
tessera_add_matrix_test(dp2.pp2.gpipe 4 parallel.pipeline_model_parallel_size=2 parallel.schedule=gpipe)
tessera_add_matrix_test(dp2.tp2.recompute_selective 4 parallel.tensor_model_parallel_size=2
                        parallel.recompute=selective)
tessera_add_matrix_test(dp3 3)
