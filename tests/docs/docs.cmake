# Docs tests: the ```console blocks of README.md and docs/*.md run as written
# (tests/docs/run_console_blocks.py states the convention), their relative links resolve,
# docs/configuration.md matches the reference generated from the config schema, `tessera train`
# prints its banner, ETA and plain lines into a batch log, scripts/plot_metrics.py draws two
# runs' metrics, and the Slurm scripts do what docs/cluster.md says.
find_package(Python3 REQUIRED COMPONENTS Interpreter)

add_test(NAME docs.console_blocks
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/docs/run_console_blocks.py
                 --tessera $<TARGET_FILE:tessera> --source ${PROJECT_SOURCE_DIR})
# Console blocks may use mpirun: oversubscribed jobs on 2 cores must not run next to others.
set_tests_properties(docs.console_blocks PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS "docs;mpi")

add_test(NAME docs.configuration
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/docs/check_config_docs.py
                 --tessera $<TARGET_FILE:tessera> ${PROJECT_SOURCE_DIR}/docs/configuration.md)
set_tests_properties(docs.configuration PROPERTIES TIMEOUT 60 LABELS docs)

add_test(NAME docs.links
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/docs/check_links.py --source ${PROJECT_SOURCE_DIR})
set_tests_properties(docs.links PROPERTIES TIMEOUT 60 LABELS docs)

add_test(NAME docs.train_output
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/docs/check_train_output.py
                 --tessera $<TARGET_FILE:tessera> --out ${CMAKE_CURRENT_BINARY_DIR}/docs_runs)
set_tests_properties(docs.train_output PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS "docs;mpi"
                     FIXTURES_SETUP docs_runs)

add_test(NAME docs.plot_metrics
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/docs/check_plot_metrics.py
                 ${CMAKE_CURRENT_BINARY_DIR}/docs_runs)
set_tests_properties(docs.plot_metrics PROPERTIES TIMEOUT 120 LABELS docs FIXTURES_REQUIRED docs_runs)

# configs/slurm/*.sbatch outside Slurm (srun and scontrol stand-ins): GPU per local rank,
# SIGUSR1 -> checkpoint -> requeue, and the requeued job's resume.
add_test(NAME docs.slurm_scripts
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/docs/check_slurm_scripts.py
                 --tessera $<TARGET_FILE:tessera> --work ${CMAKE_CURRENT_BINARY_DIR}/docs_slurm)
set_tests_properties(docs.slurm_scripts PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS "docs;mpi")
