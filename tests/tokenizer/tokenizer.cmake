# SentencePiece tokenizer (tests/tokenizer/check_tokenizer.py): `tessera tokenize` against the
# Python sentencepiece package on Tiny Shakespeare and 10,000 random multilingual strings.
# About 20 s on the 2-core machine (training a 512-piece BPE model). Skipped (77) only when
# sentencepiece cannot be imported.
add_executable(tessera_encode_strings ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/encode_strings.cc)
target_link_libraries(tessera_encode_strings PRIVATE tessera_runtime)
add_test(NAME tokenizer.sentencepiece
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/check_tokenizer.py
                 --tessera $<TARGET_FILE:tessera> --encoder $<TARGET_FILE:tessera_encode_strings>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(tokenizer.sentencepiece PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS tokenizer)
