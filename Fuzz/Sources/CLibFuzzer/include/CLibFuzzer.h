/* libFuzzer's entry point for programs that have their own main (LLVM >= 13, in the
 * libclang_rt.fuzzer archive that swiftc -sanitize=fuzzer links). SwiftPM gives every executable
 * target a Swift main, so ours calls this instead of letting libFuzzer provide main. */
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
