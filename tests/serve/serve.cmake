# `tessera serve` end to end, each test training its own one-step checkpoint and serving it on
# a free loopback port. The queue, scheduler, parser and text pieces alone are unit tests
# (tests/unit/test_serving*.cc). Include from tests/CMakeLists.txt.
#   serve.http    (test_serve.py, standard library only, ~20 s): OpenAI shapes, SSE, /metrics,
#                 disconnects, the bad-input table (bad_input.py), 1000 connections, shutdown.
#   serve.openai  (test_openai_client.py, ~10 s): the official `openai` client from PyPI.
#   serve.tp      (test_serve_tp.py, mpirun -np 2, ~30 s): tensor-parallel serving.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
foreach(name http openai tp)
  set(script test_serve.py)
  if(name STREQUAL "openai")
    set(script test_openai_client.py)
  elseif(name STREQUAL "tp")
    set(script test_serve_tp.py)
  endif()
  add_test(NAME serve.${name}
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/${script} --tessera $<TARGET_FILE:tessera>
                   --out ${CMAKE_CURRENT_BINARY_DIR}/serve_${name}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(serve.${name} PROPERTIES TIMEOUT 240 LABELS serve)
endforeach()
