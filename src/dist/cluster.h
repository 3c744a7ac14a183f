// Cluster: this process's place in an MPI job (Open MPI), when `mpirun`
// started it — its rank, the job's size and split, and the few collectives
// the ranks exchange. A process not started by mpirun (no OMPI_COMM_WORLD_SIZE
// or PMIX_RANK in its environment) never initializes MPI: the library is
// linked but idle, and nothing changes for single-node use.
//
// Rank 0 owns tokenization, scheduling and sampling; every rank runs the
// step plans rank 0 broadcasts (engine/rank_server.h). MPI is initialized
// only by Join, which the CLI calls when Launched().
//
// Faults: MPI errors are returned (MPI_ERRORS_RETURN: kUnavailable, and
// FinishRank, engine/rank_server.h, aborts the job). Every operation may wait
// at most timeout_s: a watchdog thread ends a rank stuck past it (a rank
// died or stopped answering) with one line on stderr naming the rank and
// what it waited for, and exit code 1, upon which mpirun ends the job. A
// rank that mpirun stops because another one died says so on stderr
// (SIGTERM handler) and exits 1. (Operations are blocking MPI calls: Open
// MPI's shared-memory collectives are several times faster than polled
// non-blocking ones. The exception is the layer split's pipeline, whose
// point-to-point transfers run while ranks compute: SendAsync/RecvAsync
// start them, Progress moves them along between layers — Open MPI advances
// transfers only inside MPI calls — and WaitAll ends them under the same
// timeout.)
//
// Accounting: bytes this rank sent (its payload: a broadcast's root counts
// it once per receiver, an all-reduce its vector once), bytes it received
// point to point, and seconds spent
// inside collectives (waiting for slower ranks included).
//
// Thread-safety: one thread at a time (the step thread).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "kv/kv_node_step.h"
#include "model/model_shard.h"

namespace strata {

struct CommStats {
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;  // point to point (Recv, RecvBytes)
  uint64_t operations = 0;
  double seconds = 0;
};

class Cluster {
 public:
  // Whether mpirun started this process (its environment says so).
  static bool Launched();
  // Initializes MPI for this process (once; later calls return the same
  // cluster). kUnavailable if MPI cannot start. timeout_s: how long any
  // operation may wait for the other ranks.
  [[nodiscard]] static Status Join(Split split, double timeout_s, Cluster** out);
  // The joined cluster, or null (not under mpirun, or not joined).
  static Cluster* World();

  int32_t rank() const { return rank_; }
  int32_t size() const { return size_; }
  Split split() const { return split_; }
  // The shard this rank holds (ModelLoadOptions::shard).
  ModelShard shard() const {
    ModelShard s;
    s.split = split_;
    s.rank = rank_;
    s.size = size_;
    return s;
  }

  // Every rank passes its model fingerprint (and this build's plan format,
  // its split and micro-batch size) and the RAM it lends for KV blocks
  // (set_kv_budget); kInvalidArgument on every rank, naming the ranks that
  // differ from rank 0, if any does. Waits
  // up to startup_timeout_s (ranks load at their own pace).
  [[nodiscard]] Status Handshake(uint64_t model_fingerprint, double startup_timeout_s);

  // --split none under mpirun: rank 0 runs the whole model and the other
  // ranks are KV nodes (engine/kv_nodes.h), each lending kv_budget bytes of
  // RAM (its --kv-ram; UINT64_MAX: unbounded), told to all at the handshake.
  bool kv_nodes() const { return split_ == Split::kNone && size_ > 1; }
  void set_kv_budget(uint64_t bytes) { kv_budgets_.assign(static_cast<size_t>(size_), bytes); }
  // Rank r's budget as told at the handshake. REQUIRES: 0 <= r < size().
  uint64_t kv_budget(int32_t r) const { return kv_budgets_[static_cast<size_t>(r)]; }
  KvNodePolicy kv_node_policy() const { return kv_node_policy_; }
  void set_kv_node_policy(KvNodePolicy p) { kv_node_policy_ = p; }
  // --split layer: steps of more tokens than this run through the ranks as
  // micro-batches of at most this many (engine/forward.h); 0: whole steps.
  // Every rank must set the same (Handshake checks). REQUIRES: >= 0, before Handshake.
  int32_t micro_batch_tokens() const { return micro_batch_tokens_; }
  void set_micro_batch_tokens(int32_t n) { micro_batch_tokens_ = n; }
  // Rank 0 sends *bytes to every rank; the others' *bytes become them.
  // wait_s: the timeout for this call (a rank waiting for rank 0's next
  // message may wait longer than for a collective inside a step); <= 0: timeout_s.
  [[nodiscard]] Status Broadcast(std::vector<uint8_t>* bytes, double wait_s = 0);
  // Element-wise sum of data F32 [n] over all ranks, into every rank's data.
  [[nodiscard]] Status AllReduceSum(float* data, int64_t n);
  // Rank 0's data F32 [n] into every rank's.
  [[nodiscard]] Status BroadcastFloats(float* data, int64_t n);
  [[nodiscard]] Status Send(int32_t to, const float* data, int64_t n, int32_t tag = 0);
  [[nodiscard]] Status Recv(int32_t from, float* data, int64_t n, int32_t tag = 0);
  // Non-blocking point to point: the transfer starts and the call returns;
  // data must stay valid (a receive's unread) until WaitAll. Transfers
  // between two ranks with one tag complete in the order they were started.
  [[nodiscard]] Status SendAsync(int32_t to, const float* data, int64_t n, int32_t tag);
  [[nodiscard]] Status RecvAsync(int32_t from, float* data, int64_t n, int32_t tag);
  // Advances the started transfers without waiting (between computations).
  void Progress();
  // Waits until every started transfer is done (under the timeout).
  [[nodiscard]] Status WaitAll();
  // Bytes, n < 2^31 (KV slices for sessions).
  [[nodiscard]] Status SendBytes(int32_t to, const uint8_t* data, int64_t n);
  [[nodiscard]] Status RecvBytes(int32_t from, uint8_t* data, int64_t n);

  // Ends MPI for this process: MPI_Finalize (every rank must call it), or,
  // with abort or after a failed operation, MPI_Abort (the whole job ends).
  void Finalize(bool abort);

  // An operation failed or timed out: the ranks can no longer meet (the job must be aborted).
  bool broken() const { return broken_; }
  CommStats stats() const { return stats_; }
  void ResetStats() { stats_ = CommStats{}; }
  double timeout_s() const { return timeout_s_; }

 private:
  Cluster(int32_t rank, int32_t size, Split split, double timeout_s)
      : rank_(rank), size_(size), split_(split), timeout_s_(timeout_s), kv_budgets_(static_cast<size_t>(size), UINT64_MAX) {}
  struct Pending;  // the started transfers (MPI requests), cluster.cc
  friend class ClusterOps;  // cluster.cc: MPI calls, timing and accounting

  int32_t rank_, size_;
  Split split_;
  double timeout_s_;
  CommStats stats_;
  std::vector<uint64_t> kv_budgets_;  // [size] bytes each rank lends for KV blocks
  KvNodePolicy kv_node_policy_ = KvNodePolicy::kAuto;
  int32_t micro_batch_tokens_ = 0;
  // Started transfers; shared_ptr for its type-erased deleter (Pending is
  // complete only in cluster.cc, where MPI's types are).
  std::shared_ptr<Pending> pending_;
  bool broken_ = false;  // an operation failed or timed out: the job is aborted at exit
};

}  // namespace strata
