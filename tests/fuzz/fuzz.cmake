# libFuzzer runs of the readers of untrusted input (tests/fuzz/run_fuzzer.sh): builds the
# standalone clang project tests/fuzz/ into <build>/fuzz (build-fuzz/ when run by hand) and
# fuzzes the config loader, the safetensors reader and the token-file reader for 20 s each.
# Needs clang++-14 and libclang-rt-14-dev; not added (so not failed) where clang++-14 is missing.
find_program(TESSERA_FUZZ_CLANG clang++-14)
if(TESSERA_FUZZ_CLANG)
  add_test(NAME fuzz.readers
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run_fuzzer.sh 20
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(fuzz.readers PROPERTIES
                       LABELS fuzz
                       TIMEOUT 300
                       ENVIRONMENT "TESSERA_FUZZ_BUILD_DIR=${PROJECT_BINARY_DIR}/fuzz"
                       RUN_SERIAL TRUE)
else()
  message(STATUS "clang++-14 not found: the fuzz.readers test is not added")
endif()
