# Which libraries each layer brings into a program, checked on real binaries with ldd
# (tests/link/check_link_deps.py). Linked with --no-as-needed, so that ldd shows the whole link
# line: the partitioner's tests link no MPI; a program linking Tessera::tessera gets MPI but no
# ONNX or protobuf; one that also links Tessera::export (the control) gets ONNX. Cost: < 1 s.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
target_link_options(tessera_partitioner_tests PRIVATE -Wl,--no-as-needed)
foreach(variant embed export)
  add_executable(tessera_link_${variant} ${CMAKE_CURRENT_LIST_DIR}/embed_link_check.cc)
  target_link_libraries(tessera_link_${variant} PRIVATE Tessera::tessera)
  target_link_options(tessera_link_${variant} PRIVATE -Wl,--no-as-needed)
endforeach()
target_link_libraries(tessera_link_export PRIVATE tessera_export)

set(check ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_link_deps.py)
add_test(NAME link_deps.partitioner_without_mpi
         COMMAND ${check} --binary $<TARGET_FILE:tessera_partitioner_tests> --require libstdc++ --forbid libmpi)
add_test(NAME link_deps.embed_without_onnx
         COMMAND ${check} --binary $<TARGET_FILE:tessera_link_embed> --require libmpi --forbid libonnx
                 --forbid libprotobuf)
add_test(NAME link_deps.export_with_onnx
         COMMAND ${check} --binary $<TARGET_FILE:tessera_link_export> --require libmpi --require libonnx)
