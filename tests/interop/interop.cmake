# Hugging Face interoperability (tests/interop/check_hf.py): export --hf loaded by transformers
# with every weight and the same logits (<= 1e-4 relative), import --hf of a directory
# transformers wrote, training on from it under a parallel layout, and broken directories
# refused. Skipped (77) only when torch or transformers cannot be imported. About 30 s each on
# the 2-core machine.
function(tessera_add_hf_test name config)
  add_test(NAME interop.hf.${name}
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/interop/check_hf.py
                   --tessera $<TARGET_FILE:tessera> --reference $<TARGET_FILE:tessera_onnx_reference_logits>
                   --mpirun ${MPIEXEC_EXECUTABLE} --config ${PROJECT_SOURCE_DIR}/configs/tests/${config}.yaml ${ARGN}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(interop.hf.${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300 RUN_SERIAL TRUE
                       LABELS "interop;mpi")
endfunction()

# GPT weights 10x the usual init scale, as the ONNX test, so small differences show in the logits.
tessera_add_hf_test(gpt gpt_tiny --set model.init_std=0.2
                    --continue-layout parallel.pipeline_model_parallel_size=2)
tessera_add_hf_test(llama.gqa.tied llama_tiny --set model.init_std=0.2
                    --set model.untie_embeddings_and_output_weights=false
                    --continue-layout parallel.tensor_model_parallel_size=2 --bad-inputs)
tessera_add_hf_test(llama.untied.from_tp2_pp2 llama_tiny --set model.init_std=0.2 --np 4
                    --layout parallel.tensor_model_parallel_size=2 --layout parallel.pipeline_model_parallel_size=2
                    --continue-layout parallel.pipeline_model_parallel_size=2)
