// The libnbc algorithm hint. The control variable is process state of the MPI library, so
// the handle is process-wide too (initialised once, on first use).
#include "runtime/comm/mpi_tuning.h"

#include <mpi.h>

#include <cstdlib>

namespace tessera {
namespace {

constexpr const char* kIallreduceVar = "coll_libnbc_iallreduce_algorithm";
constexpr int kLibnbcDefault = 0;  // "ignore": libnbc's own size-based choice
constexpr int kLibnbcRing = 1;

struct IallreduceControl {
  bool usable = false;
  MPI_T_cvar_handle handle{};
  int current = -1;

  IallreduceControl() {
    // An explicit user setting wins.
    if (std::getenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm") != nullptr) return;
    // Every MPI_T failure is tolerated: the tuning is an optimisation, and without the control
    // variable Open MPI keeps its default algorithm.
    int provided = 0;
    if (MPI_T_init_thread(MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) return;
    int index = -1;
    int count = 0;
    if (MPI_T_cvar_get_index(kIallreduceVar, &index) != MPI_SUCCESS) return;
    if (MPI_T_cvar_handle_alloc(index, nullptr, &handle, &count) != MPI_SUCCESS || count != 1) return;
    usable = MPI_T_cvar_read(handle, &current) == MPI_SUCCESS;
  }

  void set(int algorithm) {
    if (!usable || algorithm == current) return;
    if (MPI_T_cvar_write(handle, &algorithm) == MPI_SUCCESS) {
      current = algorithm;
    } else {
      usable = false;
    }
  }
};

}  // namespace

void hint_iallreduce_algorithm(int group_size) {
  // Every rank of the group computes the same choice, as MPI_T_SCOPE_ALL requires.
  static IallreduceControl control;
  control.set(group_size < 4 ? kLibnbcRing : kLibnbcDefault);
}

}  // namespace tessera
