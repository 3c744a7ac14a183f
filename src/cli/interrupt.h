// Ctrl-C for interactive commands: SIGINT sets a flag that long work polls,
// and makes a descriptor readable (a pipe written by the handler) that poll()
// waits on beside standard input, so a Ctrl-C arriving just before a
// blocking read is not lost. Any thread may take the signal.
#pragma once

#include <atomic>

#include "core/status.h"

namespace strata::cli {

// Installs the SIGINT handler (once per process; later calls do nothing).
[[nodiscard]] Status InstallInterruptHandler();
// True from a Ctrl-C until ClearInterrupt.
const std::atomic<bool>& InterruptFlag();
// Readable from a Ctrl-C until ClearInterrupt. REQUIRES: installed.
int InterruptFd();
// Forgets the Ctrl-Cs so far.
void ClearInterrupt();

}  // namespace strata::cli
