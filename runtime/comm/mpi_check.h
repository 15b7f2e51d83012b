// TESSERA_MPI_CHECK: turns an MPI error code into a tessera::Error naming the call, the file
// and the line. Works because MpiEnvironment installs MPI_ERRORS_RETURN on every communicator.
#pragma once

#include <mpi.h>

#include <string>

#include "core/error.h"

namespace tessera {

// MPI_Error_string of `code`, e.g. "MPI_ERR_TRUNCATE: message truncated".
std::string mpi_error_string(int code);

}  // namespace tessera

// TESSERA_MPI_CHECK(MPI_Xxx(...), "context {}", args...): throws tessera::Error with the
// context, the MPI error text, the expression, file and line when the call fails.
#define TESSERA_MPI_CHECK(call, ...)                                                      \
  do {                                                                                    \
    const int tessera_mpi_rc_ = (call);                                                   \
    if (tessera_mpi_rc_ != MPI_SUCCESS) {                                                 \
      ::tessera::detail::throw_check_failure(                                             \
          #call, __FILE__, __LINE__,                                                      \
          ::fmt::format("{}: {}", ::fmt::format(__VA_ARGS__),                             \
                        ::tessera::mpi_error_string(tessera_mpi_rc_)));                   \
    }                                                                                     \
  } while (0)
