// The errors every Env gives for a file it cannot use (env.h states them), so
// that PosixEnv and the in-memory Env word them alike.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace strata {

// "PATH: no such file" (kNotFound).
Status NoSuchFile(const std::string& path);
// "PATH: permission denied" (kIOError).
Status PermissionDenied(const std::string& path);
// "PATH: is a directory" (kInvalidArgument).
Status IsADirectory(const std::string& path);
// "PATH: is not a regular file (KIND)", KIND e.g. "a FIFO" (kInvalidArgument).
Status NotARegularFile(const std::string& path, const std::string& kind);
// "PATH: too large (SIZE bytes or more; at most MAX are read from it)" (kInvalidArgument).
Status TooLarge(const std::string& path, uint64_t size, uint64_t max_bytes);
// "PATH: locked by another process" (kBusy).
Status LockedError(const std::string& path);

}  // namespace strata
