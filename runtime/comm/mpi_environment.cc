// MpiEnvironment and abort_job.
#include "runtime/comm/mpi_environment.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "runtime/comm/mpi_check.h"

namespace tessera {

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return fmt::format("MPI error {}", code);
  return std::string(text, static_cast<size_t>(length));
}

bool mpi_is_active() {
  int initialized = 0;
  int finalized = 0;
  // Unchecked on purpose: both may be called before MPI_Init and after MPI_Finalize, when no
  // error handler applies; they only read the library's state.
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

int mpi_world_rank() {
  if (!mpi_is_active()) return 0;
  int rank = 0;
  TESSERA_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank), "MPI_Comm_rank");
  return rank;
}

MpiEnvironment::MpiEnvironment(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) {
    TESSERA_MPI_CHECK(MPI_Query_thread(&thread_level_), "MPI_Query_thread");
  } else {
    // MPI_Init has no error handler yet; a failure here aborts inside MPI itself.
    MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &thread_level_);
    owns_mpi_ = true;
  }
  TESSERA_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "installing MPI_ERRORS_RETURN");
  TESSERA_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN), "installing MPI_ERRORS_RETURN");
  TESSERA_CHECK(thread_level_ >= MPI_THREAD_FUNNELED,
                "the MPI library provides thread level {}, Tessera needs MPI_THREAD_FUNNELED ({}) or more",
                thread_level_, MPI_THREAD_FUNNELED);
}

MpiEnvironment::~MpiEnvironment() {
  if (!owns_mpi_ || !mpi_is_active()) return;
  if (std::uncaught_exceptions() > 0) return;  // see the header: the handler aborts the job
  // Tolerated teardown failure: a destructor cannot throw, and the process is ending anyway.
  MPI_Finalize();
}

int MpiEnvironment::world_rank() const {
  int rank = 0;
  TESSERA_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank), "MPI_Comm_rank");
  return rank;
}

int MpiEnvironment::world_size() const {
  int size = 0;
  TESSERA_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size), "MPI_Comm_size");
  return size;
}

void abort_job(int exit_code) noexcept {
  std::fflush(stdout);
  std::fflush(stderr);
  // Unchecked on purpose: MPI_Abort does not return when it works, and when it fails the
  // process exits below all the same.
  if (mpi_is_active()) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

}  // namespace tessera
