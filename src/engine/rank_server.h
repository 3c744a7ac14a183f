// What each process of an MPI job (dist/cluster.h) runs around a command:
// loading its shard of the model, serving rank 0's messages on the other
// ranks (dist/rank_message.h), and ending the job.
//
// Rank 0's Runner (engine/runner.h) broadcasts kOpen when it is created,
// kStep with each plan it runs, kPing when idle (engine/engine.h's
// keepalive), and kClose when it goes; ServeRank mirrors
// each with a block store of the same block ids (this rank's KV heads or
// layers) and a forward pass over its shard, so the collectives inside the
// forward pass meet — or, under --kv-nodes, with the blocks rank 0 placed
// here and this rank's part of each step's attention
// (engine/kv_node_attention.h). FinishRank broadcasts kStop.
//
// Thread-safety: the process's main thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/env.h"
#include "core/status.h"
#include "dist/cluster.h"
#include "model/model.h"

namespace strata {

// Model::Load of this process's shard (Cluster::World()'s, or all of it
// outside MPI), then, under MPI, the start-up handshake: kInvalidArgument if
// the ranks loaded different models or builds.
[[nodiscard]] Status LoadRankModel(Env* env, ModelLoadOptions options, std::unique_ptr<Model>* out);

struct RankServerParams {
  int32_t n_threads = 0;         // 0: all cores
  std::string tune_cache_path;   // attention grid cache (engine/attention_tuner.h); empty: defaults
  Env* env = nullptr;            // null: Env::Default()
};

// Ranks other than 0: runs rank 0's messages until kStop. Any error (a
// message that fails its checks, an MPI failure or timeout) is returned.
[[nodiscard]] Status ServeRank(const Model& model, Cluster& cluster, const RankServerParams& params);

// Ends this process's part of the job and returns exit_code: on success rank
// 0 tells the others to stop and every rank finalizes MPI; a non-zero exit
// code or a failed MPI operation aborts the whole job (mpirun then exits
// non-zero). Outside MPI it only returns exit_code.
int FinishRank(int exit_code);

}  // namespace strata
