// Small helpers shared by CLI subcommands.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "core/status.h"
#include "dist/cluster.h"

namespace strata::cli {

// Prints "strata: <what>: <status message>" on one line to stderr and throws
// CLI::RuntimeError(1). REQUIRES: !s.ok().
[[noreturn]] void Fail(const std::string& what, const Status& s);
// Throws via Fail if !s.ok().
void CheckOk(const std::string& what, const Status& s);

// A CLI11 check refusing an empty value: `--session ""` or `-m ""` is a
// mistake, not "no session" or "the default model".
CLI::Validator NonEmpty();

// The model used when -m is not given: $STRATA_DEFAULT_MODEL, else the
// stories260K.gguf bundled in the source tree's models/ directory.
std::string DefaultModelPath();

// Parses a byte size: digits with an optional K, M, G or T suffix (powers of
// 1024, case-insensitive, optional trailing "B"). nullopt if malformed or overflowing.
std::optional<uint64_t> ParseSize(const std::string& text);

// --lora [NAME=]FILE[:SCALE], as run and serve take it (several times).
// NAME defaults to FILE's base name without its extension (serve lists the
// adapter as that model id); SCALE to 1. A prefix before '=' holding a '/'
// belongs to the path, and so does a suffix after the last ':' that is not a
// number.
struct LoraFlag {
  std::string name;
  std::string path;
  float scale = 1.0f;
};
// kInvalidArgument naming the flag's text for an empty path or name or a non-finite scale.
[[nodiscard]] Status ParseLoraFlag(const std::string& text, LoraFlag* out);

// Where named sessions live: --session-dir, else $STRATA_SESSION_DIR, else
// $HOME/.cache/strata/sessions (./.strata-sessions without HOME).
std::string SessionDir(const std::string& flag);
// SessionDir/NAME.session; fails (cli::Fail) on an invalid name.
std::string SessionPath(const std::string& dir, const std::string& name);

// --tune-cache PATH and --no-tune, as run, serve and bench take them.
struct TuneFlags {
  std::string cache;
  bool off = false;
};
void AddTuneFlags(CLI::App* cmd, TuneFlags* flags);
// The attention tuner's cache file (engine/attention_tuner.h): --tune-cache,
// else $STRATA_TUNE_CACHE, else $XDG_CACHE_HOME/strata/attention-grid, else
// $HOME/.cache/strata/attention-grid. Empty (no tuning: the default grid) with
// --no-tune, when $STRATA_TUNE_CACHE is "off", or when none of these is set.
// Fails (cli::Fail) if the path can never be a cache file (CheckTuneCachePath:
// a directory, FIFO, device, unreadable or oversized file).
std::string TuneCachePath(const TuneFlags& flags);

// --temp, --top-k, --top-p, --min-p and --repeat-penalty as run and serve
// take them; defaults llama.cpp's (and strata run's): 0.8, 40, 0.95, 0.05, 1.
struct SamplingFlags {
  float temperature = 0.8f;
  int32_t top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
};
// what: how the help text describes the settings' scope.
void AddSamplingFlags(CLI::App* cmd, SamplingFlags* flags, const std::string& what);

// Speculative decoding, as run and serve take it: --spec ngram|draft,
// --draft-model PATH (implies draft), --draft-min, --draft-max.
struct SpecFlags {
  std::string spec;         // "", "ngram" or "draft"
  std::string draft_model;
  int32_t draft_min = 1;
  int32_t draft_max = 8;
  // The method after the flags' consistency is checked: "", "ngram" or "draft"
  // (fails naming the flags: --spec draft without --draft-model, or
  // --spec ngram with one).
  std::string Method() const;
};
void AddSpecFlags(CLI::App* cmd, SpecFlags* flags);

// --split, --mpi-timeout, --kv-nodes and --kv-remote, as the commands that run under mpirun take them.
struct MpiFlags {
  std::string split = "none";
  double timeout_s = 10;
  bool kv_nodes = false;          // --split none: the other ranks lend RAM for KV blocks
  std::string kv_remote = "auto"; // how remote blocks are read (kv/kv_node_step.h KvNodePolicy)
  int32_t micro_batch = -1;       // --split layer: pipeline micro-batch tokens (0: whole steps); -1: the default
};
// --micro-batch's default (measured: docs/BENCHMARKS.md, layer-split prefill).
inline constexpr int32_t kDefaultMicroBatchTokens = 32;
void AddMpiFlags(CLI::App* cmd, MpiFlags* flags);
// Joins the MPI job when mpirun started this process (dist/cluster.h) and
// returns it; null otherwise (MPI stays uninitialized). Fails (cli::Fail) on
// a bad --split, --kv-nodes without mpirun or with a split other than none,
// --micro-batch without --split layer, --split none under mpirun without
// --kv-nodes, or if MPI cannot start.
Cluster* JoinCluster(const MpiFlags& flags);
// Ranks other than 0: loads this rank's shard of the model and runs rank 0's
// plans until it stops (engine/rank_server.h). Fails (cli::Fail) naming the rank.
// kv_ram: the RAM this rank lends as a KV node (its --kv-ram; UINT64_MAX: unbounded).
void ServeOtherRank(Cluster& cluster, const std::string& model, const std::string& tokenizer, int32_t threads,
                    const std::string& tune_cache, uint64_t kv_ram);
// A size flag's value (K/M/G suffixes); UINT64_MAX if text is empty. Fails (cli::Fail) naming flag otherwise.
uint64_t SizeOption(const std::string& text, const char* flag);
// The text of a regular file of 1 to max_bytes bytes (a FIFO or device is
// refused, not read; an empty or larger file is kInvalidArgument naming it).
Status ReadSmallFile(const std::string& path, uint64_t max_bytes, std::string* out);

// True if stderr is a terminal (progress bars are drawn only then).
bool StderrIsTty();

// Draws "label [#####     ] 42%" on stderr when done/total changes a percent.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label) : label_(std::move(label)), enabled_(StderrIsTty()) {}
  void Update(uint64_t done, uint64_t total);
  void Finish();

 private:
  std::string label_;
  bool enabled_;
  int last_percent_ = -1;
};

}  // namespace strata::cli
