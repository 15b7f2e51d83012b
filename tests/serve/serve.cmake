# `tessera serve` end to end (tests/serve/test_serve.py, Python standard library only): trains a
# one-step checkpoint, serves it on a free loopback port, checks good and bad requests, the
# 503 of a full queue and a clean SIGTERM. The queue and scheduler alone are unit tests
# (tests/unit/test_serving*.cc). Include from tests/CMakeLists.txt.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME serve.http
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_serve.py --tessera $<TARGET_FILE:tessera>
                 --out ${CMAKE_CURRENT_BINARY_DIR}/serve
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(serve.http PROPERTIES TIMEOUT 180 LABELS serve)
