# tessera_include_root(TARGET FOLDER [INTERFACE]): gives TARGET (and whoever links it) the
# include path under which "FOLDER/..." resolves, and nothing else of the source tree.
#
# Headers are included as "runtime/tensor.h", "kernels/matmul.h", ... relative to the
# repository root. Exporting the root itself would let any target include any folder, so a
# lower layer could include a higher one and still build. Instead each folder gets its own
# root in the build tree, holding one link to that folder: a target sees only the folders of
# the targets it links, and an include that goes up a layer fails to compile.
#
# The folders are found from this file's place (cmake/ under the repository root), not from
# PROJECT_SOURCE_DIR, so a project elsewhere (tests/cuda/device) can build them too.
function(tessera_include_root target folder)
  get_filename_component(source_root "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/.." ABSOLUTE)
  set(root ${PROJECT_BINARY_DIR}/include_roots/${folder})
  file(MAKE_DIRECTORY ${root})
  if(NOT EXISTS ${root}/${folder})
    file(CREATE_LINK ${source_root}/${folder} ${root}/${folder} SYMBOLIC)
  endif()
  set(scope PUBLIC)
  if(ARGV2 STREQUAL "INTERFACE")
    set(scope INTERFACE)
  endif()
  target_include_directories(${target} ${scope} $<BUILD_INTERFACE:${root}>
                                                $<INSTALL_INTERFACE:${TESSERA_INSTALL_INCLUDEDIR}>)
endfunction()
