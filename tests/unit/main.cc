// The Catch2 test runner for tessera_tests: every tests/unit/*.cc file adds its cases.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
