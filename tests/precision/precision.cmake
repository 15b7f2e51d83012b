# Mixed precision end to end (runtime/compute): bf16 layout invariance, fp16 loss scaling, and
# resume across precisions. The op-level checks are unit tests (tests/unit/test_backend_ops.cc).
#
# bf16 tolerance: every layout runs the same bf16 GEMM inputs except where it changes what is
# rounded — a pipeline boundary rounds the residual stream to bf16 for the send (one rounding,
# 2^-8 relative, that one rank does not do), and tensor parallelism's reordered fp32 partial
# sums can flip an input's bf16 rounding. Measured over 20 steps: 4e-6 (tp 2) to 1.7e-5 (pp 2,
# tp 2 x pp 2 with sp) relative loss difference. 2e-4 is >10x that and still 20x below one bf16
# rounding of the loss, so a missing reduction or a wrong cast fails.
tessera_add_invariance_test(bf16.gpt.tp2 2 gpt_tiny --common train.precision=bf16 --rtol 2e-4
                            --set parallel.tensor_model_parallel_size=2)
tessera_add_invariance_test(bf16.gpt.pp2 2 gpt_tiny --common train.precision=bf16 --rtol 2e-4
                            --set parallel.pipeline_model_parallel_size=2)
tessera_add_invariance_test(bf16.gpt.tp2.sp.pp2 4 gpt_tiny --common train.precision=bf16 --rtol 2e-4
                            --set parallel.tensor_model_parallel_size=2 --set parallel.sequence_parallel=true
                            --set parallel.pipeline_model_parallel_size=2)
tessera_add_invariance_test(bf16.gpt.dp2.zero1 2 gpt_tiny --common train.precision=bf16 --rtol 2e-4
                            --set parallel.zero_stage=1)
tessera_add_invariance_test(bf16.mlp.tp2.dp2 4 mlp_tiny --common train.precision=bf16 --rtol 2e-4
                            --set parallel.tensor_model_parallel_size=2)

add_test(NAME precision.fp16_loss_scaling
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/precision/check_loss_scaling.py
                 --tessera $<TARGET_FILE:tessera> --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(precision.fp16_loss_scaling PROPERTIES TIMEOUT 600)

# fp16 resume restores the loss scale: bit-identical losses need the same scale at every step.
tessera_add_resume_test(fp16.loss_scale.bit_identical --set train.precision=fp16 --set train.loss_scale_window=3
                        --resume-set train.precision=fp16 --resume-set train.loss_scale_window=3)
# Checkpoints keep fp32 masters: an fp32 checkpoint resumes in bf16 and a bf16 one in fp32 (and
# under another layout). Measured 2.3e-5 and 3.0e-5 relative against the uninterrupted run; 3e-4 is 10x that.
tessera_add_resume_test(fp32.to.bf16.tp2 --resume-np 2 --resume-set train.precision=bf16
                        --resume-set parallel.tensor_model_parallel_size=2 --rtol 3e-4)
tessera_add_resume_test(bf16.pp2.to.fp32 --np 2 --set train.precision=bf16 --set parallel.pipeline_model_parallel_size=2
                        --resume-np 1 --resume-set train.precision=fp32 --rtol 3e-4)

add_test(NAME precision.export_bf16
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/precision/check_export_bf16.py
                 --tessera $<TARGET_FILE:tessera> --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(precision.export_bf16 PROPERTIES TIMEOUT 300)

# parallel.grad_reduce_dtype: bf16 — the data-parallel gradient sum in bf16 (every partial sum
# rounded). The one-rank reference reduces nothing, so this measures the bf16 reduction's error:
# 3.9e-6 (dp 2, all-reduce buckets) and 6.4e-6 (dp 4, ZeRO-1 reduce-scatter) relative loss
# difference over 20 steps, against ~1e-7 for the fp32 reduction. 1e-4 is 15x that.
tessera_add_invariance_test(bf16_grad_reduce.gpt.dp2 2 gpt_tiny --common parallel.grad_reduce_dtype=bf16 --rtol 1e-4
                            --set parallel.bucket_mb=0.01)
tessera_add_invariance_test(bf16_grad_reduce.gpt.dp4.zero1 4 gpt_tiny --common parallel.grad_reduce_dtype=bf16
                            --rtol 1e-4 --set parallel.zero_stage=1)

# The Llama block runs through the same seam: bf16 tp 2 x sp x pp 2 against one rank in bf16
# (measured 1.7e-5, as the GPT's).
tessera_add_invariance_test(bf16.llama.tp2.sp.pp2 4 llama_tiny --common train.precision=bf16 --rtol 2e-4
                            --set parallel.tensor_model_parallel_size=2 --set parallel.sequence_parallel=true
                            --set parallel.pipeline_model_parallel_size=2)

# ZeRO-3 under bf16: the units are gathered in bf16 and, with grad_reduce_dtype bf16, their
# gradients reduce-scattered in bf16 (runtime/train/zero_units.h). Against one rank in bf16 the
# GEMMs multiply the same bf16 weights; stages 1 and 2 differ by the gradient sums only (measured
# 3.6e-6 at dp 4, 9.6e-6 at dp 2 with bf16 reduction). ZeRO-3 also uses the fp32 parameters
# (embedding rows, LayerNorms, biases) rounded to bf16 as gathered, as FSDP's mixed precision
# does: 1.11e-4 at dp 4 and 1.16e-4 at dp 2 with bf16 reduction over 20 steps. 5e-4 is 4x that
# and still 8x below one bf16 rounding of the loss (3.9e-3).
tessera_add_invariance_test(bf16.gpt.dp4.zero3 4 gpt_tiny --common train.precision=bf16 --rtol 5e-4
                            --set parallel.zero_stage=3 --set parallel.zero_prefetch=1)
tessera_add_invariance_test(bf16.gpt.dp2.zero3.bf16_reduce 2 gpt_tiny --common train.precision=bf16 --rtol 5e-4
                            --set parallel.zero_stage=3 --set parallel.grad_reduce_dtype=bf16)
tessera_add_invariance_test(bf16.gpt.dp2.zero2.bf16_reduce 2 gpt_tiny --common train.precision=bf16 --rtol 1e-4
                            --set parallel.zero_stage=2 --set parallel.grad_reduce_dtype=bf16)
add_test(NAME precision.zero3_bf16_traffic
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/precision/check_zero_bf16_traffic.py
                 --tessera $<TARGET_FILE:tessera> --mpirun ${MPIEXEC_EXECUTABLE}
                 --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(precision.zero3_bf16_traffic PROPERTIES RUN_SERIAL TRUE TIMEOUT 120 LABELS mpi)
