# Local SGD / DiLoCo (runtime/train/outer_sync.h). Include after invariance.cmake (it uses
# tessera_add_invariance_test and tessera_add_resume_test). Cost on the shared 2-core machine:
# the 2-rank outer sync program ~1 s; each comparison below runs gpt_tiny for 8-12 steps two or
# three times on 1-4 ranks, 2-14 s each: 33 s for all ten on a quiet moment, 73 s under load.
add_executable(tessera_mpi_outer_sync_tests mpi/outer_sync_tests.cc)
target_link_libraries(tessera_mpi_outer_sync_tests PRIVATE tessera_runtime)
target_include_directories(tessera_mpi_outer_sync_tests PRIVATE ${PROJECT_SOURCE_DIR})
tessera_add_mpi_test(mpi.outer_sync.np2 2 tessera_mpi_outer_sync_tests)

set(outer_short --steps 12)
# One replica: local SGD with any H is plain training, bit for bit; DiLoCo with outer lr 1 and
# no momentum too, up to the rounding of anchor - (anchor - theta).
tessera_add_invariance_test(outer.dp1.local_sgd.h3.exact 1 gpt_tiny ${outer_short} --rtol 0
                            --set parallel.data_parallel_sync=local_sgd --set parallel.sync_interval=3)
tessera_add_invariance_test(outer.dp1.diloco.lr1 1 gpt_tiny ${outer_short} --rtol 1e-6
                            --set parallel.data_parallel_sync=diloco --set parallel.sync_interval=3
                            --set parallel.outer_lr=1 --set parallel.outer_momentum=0)
# Two replicas, H = 1, outer lr 1, no momentum: synchronous DP whenever the inner step is
# linear in the gradient. AdamW is, to ~1e-6, when eps dwarfs sqrt(v) (eps 1e3, lr 1: SGD
# with momentum, lr 1e-3); per-replica clipping is not, so it is off. grad_norm is each
# replica's own, so only the losses are compared.
set(linear_adamw --common train.optimizer.eps=1000 --common train.optimizer.lr=1 --common train.optimizer.min_lr=0.1
                 --common train.optimizer.grad_clip=0 --keys loss,val_loss)
tessera_add_invariance_test(outer.dp2.diloco.h1.is_sync_dp 2 gpt_tiny ${outer_short} ${linear_adamw} --rtol 1e-5
                            --set parallel.data_parallel_sync=diloco --set parallel.outer_lr=1
                            --set parallel.outer_momentum=0)
# tp 2 inside each of 2 DiLoCo replicas (and ZeRO-sharded outer state) == tp 1 replicas.
tessera_add_invariance_test(outer.dp2.diloco.tp2 4 gpt_tiny ${outer_short} --rtol 1e-5 --base-np 2
                            --base-set parallel.data_parallel_sync=diloco --base-set parallel.sync_interval=3
                            --set parallel.data_parallel_sync=diloco --set parallel.sync_interval=3
                            --set parallel.tensor_model_parallel_size=2 --set parallel.zero_stage=1)
# Streaming DiLoCo with pp 2 inside each replica == pp 1 replicas (fragments split across stages).
tessera_add_invariance_test(outer.dp2.streaming.pp2 4 gpt_tiny ${outer_short} --rtol 1e-5 --base-np 2
                            --base-set parallel.data_parallel_sync=diloco --base-set parallel.sync_interval=4
                            --base-set parallel.outer_fragments=2 --base-set parallel.outer_delay=1
                            --set parallel.data_parallel_sync=diloco --set parallel.sync_interval=4
                            --set parallel.outer_fragments=2 --set parallel.outer_delay=1
                            --set parallel.pipeline_model_parallel_size=2)

# Resume between syncs is exact: DiLoCo (step 7 of H = 3), and streaming with a reduction in
# flight at the checkpoint (fragment 0 launched at step 6, applied at 7).
tessera_add_resume_test(outer.diloco.between_syncs --np 2 --set parallel.data_parallel_sync=diloco
                        --set parallel.sync_interval=3 --steps 12 --stop 7)
tessera_add_resume_test(outer.streaming.in_flight --np 2 --set parallel.data_parallel_sync=diloco
                        --set parallel.sync_interval=4 --set parallel.outer_fragments=2 --set parallel.outer_delay=1
                        --set parallel.outer_dtype=bf16 --steps 12 --stop 6)
# Right after a sync (step 6 of H = 3) a DiLoCo checkpoint resumes under another dp size: the
# replicas were identical, so the first resumed step (before the replicas drift apart
# differently) matches; between syncs (step 7) that resume is refused.
tessera_add_resume_test(outer.diloco.after_sync.dp2.to.dp1 --np 2 --set parallel.data_parallel_sync=diloco
                        --set parallel.sync_interval=3 --steps 8 --stop 6 --resume-np 1
                        --resume-set parallel.data_parallel_sync=diloco --resume-set parallel.sync_interval=3
                        --rtol 1e-5 --compare 1)
tessera_add_resume_test(outer.diloco.between_syncs.dp2.to.dp1.refused --np 2
                        --set parallel.data_parallel_sync=diloco --set parallel.sync_interval=3 --steps 8 --stop 7
                        --resume-np 1 --resume-set parallel.data_parallel_sync=diloco
                        --resume-set parallel.sync_interval=3
                        --expect-error "saved by 2 dp replicas between two syncs .step 7 is not right after a sync.")
