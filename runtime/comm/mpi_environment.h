// MpiEnvironment: MPI init/finalize for the process, and abort_job for fatal errors.
// One MpiEnvironment exists before any communicator: made in main by the CLI and by embedding
// programs, by the first tessera.Trainer in Python, and adopting a host program's MPI when it
// is already initialised.
#pragma once

namespace tessera {

class MpiEnvironment {
 public:
  // Initialises MPI with MPI_THREAD_SERIALIZED (MPI calls from one thread at a time; kernels
  // may use OpenMP threads freely) and requires at least MPI_THREAD_FUNNELED. Installs
  // MPI_ERRORS_RETURN on MPI_COMM_WORLD and MPI_COMM_SELF, so MPI errors surface as
  // tessera::Error instead of killing the process. If MPI is already initialised (a host
  // program embedding Tessera), it only installs the error handlers and never finalizes.
  MpiEnvironment(int* argc, char*** argv);
  MpiEnvironment() : MpiEnvironment(nullptr, nullptr) {}
  // MPI_Finalize when this object initialised MPI -- except while an exception is unwinding
  // the stack: finalize is a synchronising step that could wait forever for a rank that is
  // stuck, so MPI is left up for the handler to print the error and call abort_job.
  ~MpiEnvironment();
  MpiEnvironment(const MpiEnvironment&) = delete;
  MpiEnvironment& operator=(const MpiEnvironment&) = delete;

  // The thread level MPI provided (MPI_THREAD_*).
  int thread_level() const { return thread_level_; }
  int world_rank() const;
  int world_size() const;

 private:
  bool owns_mpi_ = false;
  int thread_level_ = 0;
};

// True between MPI_Init and MPI_Finalize.
bool mpi_is_active();
// This process's rank in MPI_COMM_WORLD; 0 without an active MPI.
int mpi_world_rank();

// Ends the whole job: flushes stdout/stderr, then MPI_Abort(MPI_COMM_WORLD, exit_code) so
// that mpirun kills the other ranks instead of leaving them waiting on this one. Without an
// active MPI it exits the process. Call it after printing a fatal error on any rank.
[[noreturn]] void abort_job(int exit_code) noexcept;

}  // namespace tessera
