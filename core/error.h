// tessera::Error and the check macros that throw it. Only the launcher's main turns
// errors into exit codes; everything below it throws.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace tessera {

// Every failure Tessera reports: what() is one line. A broken invariant (TESSERA_CHECK,
// TESSERA_MPI_CHECK) carries the failed expression, file and line; InputError below is the
// kind the user can act on.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Bad input from the user (config field, data file, checkpoint, world size): the message
// names the file/field and the rule, without source locations.
class InputError : public Error {
 public:
  using Error::Error;
};

namespace detail {
[[noreturn]] inline void throw_check_failure(const char* expr, const char* file, int line,
                                             const std::string& message) {
  throw Error(fmt::format("{} (check `{}` failed at {}:{})", message, expr, file, line));
}
}  // namespace detail

}  // namespace tessera

// TESSERA_CHECK(cond, "format {}", args...): throws tessera::Error naming the expression,
// file and line when cond is false. For invariants and internal consistency.
#define TESSERA_CHECK(cond, ...)                                                         \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      ::tessera::detail::throw_check_failure(#cond, __FILE__, __LINE__,                  \
                                             ::fmt::format(__VA_ARGS__));                \
    }                                                                                    \
  } while (0)

// TESSERA_REQUIRE(cond, "format {}", args...): throws tessera::InputError with the message
// alone. For validating user input, where the message must name the field and the rule.
#define TESSERA_REQUIRE(cond, ...)                                                       \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      throw ::tessera::InputError(::fmt::format(__VA_ARGS__));                           \
    }                                                                                    \
  } while (0)
