# `tessera generate` on a checkpoint of a few training steps (tests/check_generate.py); the
# engine itself is unit-tested in tests/unit/test_inference*.cc and test_generate.cc.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME generate.cli
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/check_generate.py
                 --tessera $<TARGET_FILE:tessera> --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(generate.cli PROPERTIES TIMEOUT 300)
