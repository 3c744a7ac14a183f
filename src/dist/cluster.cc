#include "dist/cluster.h"

// The C API only (Open MPI's C++ bindings are deprecated and not linked).
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>

#include "kv/step_plan.h"

namespace strata {

namespace {

Cluster* g_world = nullptr;
char g_term_message[160];  // the SIGTERM handler's line, formatted at Join
size_t g_term_length = 0;

void OnTerm(int) {
  ssize_t ignored = write(2, g_term_message, g_term_length);
  (void)ignored;
  _exit(1);
}

std::string MpiError(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int n = 0;
  MPI_Error_string(code, text, &n);
  return std::string(text, static_cast<size_t>(n));
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The operation under way (blocking MPI calls: Open MPI's shared-memory
// collectives are several times faster than its non-blocking ones polled),
// watched by a thread: past its deadline the rank prints what it waited for
// and exits 1, and mpirun ends the job.
std::atomic<int64_t> g_deadline_ns{0};  // 0: no operation under way
char g_watch_message[256];
std::atomic<size_t> g_watch_length{0};

void Watchdog() {
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const int64_t deadline = g_deadline_ns.load(std::memory_order_acquire);
    if (deadline == 0 || NowNs() < deadline) continue;
    ssize_t ignored = write(2, g_watch_message, g_watch_length.load());
    (void)ignored;
    _exit(1);
  }
}

}  // namespace

// MPI calls with a deadline, timing and byte accounting.
class ClusterOps {
 public:
  // what names the operation in the timeout message; wait_s <= 0: the cluster's timeout.
  ClusterOps(Cluster& c, const std::string& what, double wait_s) : c_(c), what_(what), start_ns_(NowNs()) {
    const double limit = wait_s > 0 ? wait_s : c.timeout_s_;
    const int n = std::snprintf(g_watch_message, sizeof g_watch_message,
                                "strata: rank %d of %d: %s: no answer from the other ranks within %g s (a rank died or "
                                "stopped answering)\n",
                                c.rank_, c.size_, what.c_str(), limit);
    g_watch_length.store(n > 0 ? std::min(static_cast<size_t>(n), sizeof g_watch_message - 1) : 0);
    g_deadline_ns.store(start_ns_ + static_cast<int64_t>(limit * 1e9), std::memory_order_release);
  }
  ~ClusterOps() {
    g_deadline_ns.store(0, std::memory_order_release);
    c_.stats_.seconds += static_cast<double>(NowNs() - start_ns_) * 1e-9;
    ++c_.stats_.operations;
  }
  void Sent(uint64_t bytes) { c_.stats_.bytes_sent += bytes; }
  void Received(uint64_t bytes) { c_.stats_.bytes_received += bytes; }
  // An MPI call's return code as a Status.
  Status Check(int rc) {
    if (rc == MPI_SUCCESS) return Status::Ok();
    c_.broken_ = true;
    return Status::Unavailable(fmt::format("{} failed: {}", what_, MpiError(rc)));
  }

 private:
  Cluster& c_;
  std::string what_;
  int64_t start_ns_;
};

bool Cluster::Launched() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

Cluster* Cluster::World() { return g_world; }

Status Cluster::Join(Split split, double timeout_s, Cluster** out) {
  if (g_world != nullptr) {
    *out = g_world;
    return Status::Ok();
  }
  if (!(timeout_s > 0)) return Status::InvalidArgument("the MPI timeout must be positive");
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
    return Status::Unavailable("MPI_Init failed");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  g_world = new Cluster(rank, size, split, timeout_s);
  const int n = std::snprintf(g_term_message, sizeof g_term_message,
                              "strata: rank %d of %d: stopped by mpirun (another rank failed, or the job was "
                              "interrupted)\n",
                              rank, size);
  g_term_length = n > 0 ? std::min(static_cast<size_t>(n), sizeof g_term_message - 1) : 0;
  signal(SIGTERM, OnTerm);
  std::thread(Watchdog).detach();
  // An exit that bypassed FinishRank (engine/rank_server.h) cannot meet the
  // other ranks in MPI_Finalize: it aborts the job instead.
  std::atexit([] {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Abort(MPI_COMM_WORLD, 1);
  });
  *out = g_world;
  return Status::Ok();
}

void Cluster::Finalize(bool abort) {
  if (abort || broken_) MPI_Abort(MPI_COMM_WORLD, 1);
  MPI_Finalize();
}

Status Cluster::Handshake(uint64_t model_fingerprint, double startup_timeout_s) {
  const uint64_t mine[3] = {model_fingerprint,
                            (uint64_t{kPlanVersion} << 48) | (static_cast<uint64_t>(micro_batch_tokens_) << 8) |
                                static_cast<uint64_t>(split_),
                            kv_budgets_[static_cast<size_t>(rank_)]};
  std::vector<uint64_t> all(3 * static_cast<size_t>(size_));
  {
    ClusterOps op(*this, "start-up handshake", startup_timeout_s);
    op.Sent(sizeof mine);
    STRATA_RETURN_IF_ERROR(op.Check(MPI_Allgather(mine, 3, MPI_UINT64_T, all.data(), 3, MPI_UINT64_T, MPI_COMM_WORLD)));
  }
  for (size_t r = 0; r < static_cast<size_t>(size_); ++r) kv_budgets_[r] = all[3 * r + 2];
  std::string models, builds;
  uint64_t other = 0;
  for (size_t r = 1; r < static_cast<size_t>(size_); ++r) {
    if (all[3 * r] != all[0]) {
      if (models.empty()) other = all[3 * r];
      models += fmt::format("{}{}", models.empty() ? "" : ", ", r);
    }
    if (all[3 * r + 1] != all[1]) builds += fmt::format("{}{}", builds.empty() ? "" : ", ", r);
  }
  if (!models.empty())
    return Status::InvalidArgument(fmt::format("rank(s) {} loaded a different model than rank 0 (fingerprint {:016x}, "
                                               "rank 0 {:016x}): every rank must load the same file",
                                               models, other, all[0]));
  if (!builds.empty())
    return Status::InvalidArgument(
        fmt::format("rank(s) {} run a different strata build, --split or --micro-batch than rank 0", builds));
  return Status::Ok();
}

Status Cluster::Broadcast(std::vector<uint8_t>* bytes, double wait_s) {
  ClusterOps op(*this, "broadcast", wait_s);
  uint64_t n = bytes->size();
  STRATA_RETURN_IF_ERROR(op.Check(MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD)));
  if (n > (uint64_t{1} << 31)) return Status::Corrupt(fmt::format("broadcast of {} bytes", n));
  if (rank_ != 0) bytes->resize(n);
  if (rank_ == 0) op.Sent((8 + n) * static_cast<uint64_t>(size_ - 1));
  if (n == 0) return Status::Ok();
  return op.Check(MPI_Bcast(bytes->data(), static_cast<int>(n), MPI_BYTE, 0, MPI_COMM_WORLD));
}

Status Cluster::AllReduceSum(float* data, int64_t n) {
  ClusterOps op(*this, "all-reduce", 0);
  op.Sent(static_cast<uint64_t>(n) * sizeof(float));
  return op.Check(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
}

Status Cluster::BroadcastFloats(float* data, int64_t n) {
  ClusterOps op(*this, "broadcast", 0);
  if (rank_ == 0) op.Sent(static_cast<uint64_t>(n) * sizeof(float) * static_cast<uint64_t>(size_ - 1));
  return op.Check(MPI_Bcast(data, static_cast<int>(n), MPI_FLOAT, 0, MPI_COMM_WORLD));
}

Status Cluster::Send(int32_t to, const float* data, int64_t n, int32_t tag) {
  ClusterOps op(*this, fmt::format("send to rank {}", to), 0);
  op.Sent(static_cast<uint64_t>(n) * sizeof(float));
  return op.Check(MPI_Send(data, static_cast<int>(n), MPI_FLOAT, to, tag, MPI_COMM_WORLD));
}

Status Cluster::Recv(int32_t from, float* data, int64_t n, int32_t tag) {
  ClusterOps op(*this, fmt::format("receive from rank {}", from), 0);
  op.Received(static_cast<uint64_t>(n) * sizeof(float));
  return op.Check(MPI_Recv(data, static_cast<int>(n), MPI_FLOAT, from, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
}

struct Cluster::Pending {
  std::vector<MPI_Request> requests;
};

Status Cluster::SendAsync(int32_t to, const float* data, int64_t n, int32_t tag) {
  if (!pending_) pending_ = std::make_shared<Pending>();
  ClusterOps op(*this, fmt::format("send to rank {}", to), 0);
  op.Sent(static_cast<uint64_t>(n) * sizeof(float));
  MPI_Request r = MPI_REQUEST_NULL;
  STRATA_RETURN_IF_ERROR(op.Check(MPI_Isend(data, static_cast<int>(n), MPI_FLOAT, to, tag, MPI_COMM_WORLD, &r)));
  pending_->requests.push_back(r);
  return Status::Ok();
}

Status Cluster::RecvAsync(int32_t from, float* data, int64_t n, int32_t tag) {
  if (!pending_) pending_ = std::make_shared<Pending>();
  ClusterOps op(*this, fmt::format("receive from rank {}", from), 0);
  op.Received(static_cast<uint64_t>(n) * sizeof(float));
  MPI_Request r = MPI_REQUEST_NULL;
  STRATA_RETURN_IF_ERROR(op.Check(MPI_Irecv(data, static_cast<int>(n), MPI_FLOAT, from, tag, MPI_COMM_WORLD, &r)));
  pending_->requests.push_back(r);
  return Status::Ok();
}

void Cluster::Progress() {
  if (!pending_ || pending_->requests.empty()) return;
  int done = 0;
  // Errors surface in WaitAll (the requests stay).
  (void)MPI_Testall(static_cast<int>(pending_->requests.size()), pending_->requests.data(), &done, MPI_STATUSES_IGNORE);
}

Status Cluster::WaitAll() {
  if (!pending_ || pending_->requests.empty()) return Status::Ok();
  ClusterOps op(*this, "pipeline transfers", 0);
  std::vector<MPI_Request> requests = std::move(pending_->requests);
  pending_->requests.clear();
  return op.Check(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE));
}

Status Cluster::SendBytes(int32_t to, const uint8_t* data, int64_t n) {
  ClusterOps op(*this, fmt::format("send to rank {}", to), 0);
  op.Sent(static_cast<uint64_t>(n));
  return op.Check(MPI_Send(data, static_cast<int>(n), MPI_BYTE, to, 0, MPI_COMM_WORLD));
}

Status Cluster::RecvBytes(int32_t from, uint8_t* data, int64_t n) {
  ClusterOps op(*this, fmt::format("receive from rank {}", from), 0);
  op.Received(static_cast<uint64_t>(n));
  return op.Check(MPI_Recv(data, static_cast<int>(n), MPI_BYTE, from, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
}

}  // namespace strata
