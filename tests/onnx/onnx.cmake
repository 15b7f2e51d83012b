# ONNX export parity (tests/onnx/check_onnx.py): a tiny model trained on one rank and under
# tp 2 x pp 2 (mpirun -np 4), exported with `tessera export --onnx` (inline and as external
# data), run by onnxruntime and compared with Tessera's own logits (the training Model at tp 1,
# tessera_onnx_reference_logits). Skipped (77) only when onnxruntime cannot be imported.
# The llama tests (~45 s together) also compare with transformers (--transformers).
find_package(Python3 REQUIRED COMPONENTS Interpreter)

add_executable(tessera_onnx_reference_logits ${CMAKE_CURRENT_SOURCE_DIR}/onnx/reference_logits.cc)
target_link_libraries(tessera_onnx_reference_logits PRIVATE tessera_launcher)

function(tessera_add_onnx_test name np config)
  add_test(NAME onnx.${name}
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/onnx/check_onnx.py
                   --tessera $<TARGET_FILE:tessera> --reference $<TARGET_FILE:tessera_onnx_reference_logits>
                   --mpirun ${MPIEXEC_EXECUTABLE} --np ${np}
                   --config ${PROJECT_SOURCE_DIR}/configs/tests/${config}.yaml ${ARGN}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(onnx.${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120 LABELS onnx)
  if(np GREATER 1)
    set_tests_properties(onnx.${name} PROPERTIES RUN_SERIAL TRUE LABELS "onnx;mpi")
  endif()
endfunction()

# Weights 10x GPT's usual init scale: after 3 steps the activations then reach GELU's curved
# part and peaked attention, so small differences in either show in the logits.
set(wide --set model.init_std=0.2)
tessera_add_onnx_test(gpt 1 gpt_tiny ${wide})
tessera_add_onnx_test(gpt.tp2.pp2 4 gpt_tiny ${wide} --set parallel.tensor_model_parallel_size=2
                      --set parallel.pipeline_model_parallel_size=2)
# Attention narrower than the hidden size (heads * head_dim = 4 * 4 < 32), as pruned models have.
tessera_add_onnx_test(gpt.head_dim 1 gpt_tiny ${wide} --set model.head_dim=4)
tessera_add_onnx_test(mlp 1 mlp_tiny)
# Llama (RMSNorm, RoPE, SwiGLU, GQA as elementary opset-17 ops): GQA untied and MQA tied, each
# also against transformers' LlamaForCausalLM (export --hf); and under tp 2 x pp 2.
tessera_add_onnx_test(llama 1 llama_tiny ${wide} --transformers)
tessera_add_onnx_test(llama.tied_mqa 1 llama_tiny ${wide} --transformers --set model.num_query_groups=1
                      --set model.untie_embeddings_and_output_weights=false)
tessera_add_onnx_test(llama.tp2.pp2 4 llama_tiny ${wide} --set parallel.tensor_model_parallel_size=2
                      --set parallel.pipeline_model_parallel_size=2)
