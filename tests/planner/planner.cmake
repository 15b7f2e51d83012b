# Planner tests under mpirun: `parallel.partition: auto` takes the cost model's split when
# `tessera train` has a machine model, the FLOP split otherwise, and trains to one rank's losses.
find_package(Python3 REQUIRED COMPONENTS Interpreter)

add_test(NAME planner.auto_partition
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/planner/check_auto_partition.py
                 --tessera $<TARGET_FILE:tessera> --mpirun ${MPIEXEC_EXECUTABLE}
                 --config ${PROJECT_SOURCE_DIR}/configs/tests/mlp_tiny.yaml
                 --cluster ${PROJECT_SOURCE_DIR}/tests/planner/slow_link_cluster.yaml --np 4
                 --set parallel.tensor_model_parallel_size=2 --set parallel.pipeline_model_parallel_size=2
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
# Oversubscribed mpirun jobs on 2 cores must not run next to each other.
set_tests_properties(planner.auto_partition PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS mpi)
