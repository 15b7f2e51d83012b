// Process-wide host allocator setting for training loops. Every step allocates and frees the
// same activation and gradient buffers; by default glibc returns large freed blocks to the OS
// (munmap, heap trimming), so the next step takes a page fault on every fresh page. That was
// ~10% of CPU time (docs/benchmarks.md, profile finding 1). The program that owns the process
// (the `tessera` executable, or an embedding trainer) opts in; the library never changes it
// behind a caller's back.
#pragma once

namespace tessera {

// Keeps freed blocks of up to 256 MiB in the heap and trims it only above 1 GiB of free memory.
// Returns false when the allocator in use does not take glibc's settings (a sanitizer's
// allocator, for one): the program runs as before, only without the speed-up.
bool retain_freed_host_memory();

}  // namespace tessera
