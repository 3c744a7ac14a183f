// The server over a faulty KV disk tier and tight KV budgets, through real
// HTTP (ServerHarness): a corrupted tier block or a full disk never fails a
// request that RAM can hold, /metrics shows what happened, error bodies name
// no server path, and the status codes say what the client should do — 429
// only for a full queue, 503 "retry later" for KV the cache cannot hold now,
// 400 context_length_exceeded for a request that can never fit.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "fault_env.h"
#include "kv/kv_layout.h"
#include "server/api_error.h"
#include "server_harness.h"

namespace strata::testing {
namespace {

using nlohmann::json;

const std::string kPrefix =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day,";

struct Reply {
  int status = 0;
  std::string body;
  json j;
};

Reply Complete(const ServerHarness& h, const std::string& prompt, int max_tokens) {
  const json body = {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}};
  auto r = h.Client()->Post("/v1/completions", body.dump(), "application/json");
  EXPECT_TRUE(r) << "no response";
  if (!r) return Reply{};
  return Reply{r->status, r->body, json::parse(r->body, nullptr, false)};
}

std::string TextOf(const Reply& r) {
  EXPECT_EQ(r.status, 200) << r.body;
  return r.status == 200 ? r.j["choices"][0]["text"].get<std::string>() : "";
}

// The value of series `name` (exact, labels included) in a /metrics body; -1 if absent.
double Metric(const ServerHarness& h, const std::string& name) {
  auto r = h.Client()->Get("/metrics");
  EXPECT_TRUE(r && r->status == 200);
  if (!r) return -1;
  std::istringstream in(r->body);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  return -1;
}

// Engine parameters with a KV block size and a captured log (instead of stderr).
struct TierSetup {
  std::mutex mu;
  std::vector<std::string> log;
  EngineParams Params(int32_t block) {
    EngineParams p = ServerHarness::DefaultEngineParams();
    p.kv_block_tokens = block;
    p.log = [this](const std::string& line) {
      std::lock_guard<std::mutex> l(mu);
      log.push_back(line);
    };
    return p;
  }
};

uint64_t BlockBytes(int32_t block) {
  std::unique_ptr<Model> m;
  ModelLoadOptions o;
  o.path = StoriesModelPath();
  EXPECT_TRUE(Model::Load(Env::Default(), o, &m).ok());
  KvLayout L;
  EXPECT_TRUE(MakeKvLayout(m->hparams(), DType::kF32, block, &L).ok());
  return L.block_bytes();
}

TEST(ServerKvFaultTest, CorruptTierBlockIsRecomputedAndAnswered) {
  std::string want;
  {
    ServerHarness reference;  // no tiers
    want = TextOf(Complete(reference, kPrefix + " she found", 20));
  }
  const std::string dir = MakeTempDir();
  TierSetup t;
  EngineParams p = t.Params(16);
  p.kv_tiers.ram_bytes = 0;
  p.kv_tiers.disk_dir = dir;
  {
    ServerHarness h({}, p);
    EXPECT_EQ(Complete(h, kPrefix + " she saw", 20).status, 200);
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir)) files.push_back(e.path());
    ASSERT_EQ(files.size(), 1u);
    {
      // The start of the tier file: the first slice written, under the cached prefix.
      std::fstream f(files[0], std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(100);
      f.write("corrupted!", 10);
    }
    for (int i = 0; i < 2; ++i) {
      const Reply r = Complete(h, kPrefix + " she found", 20);
      EXPECT_EQ(TextOf(r), want);
      EXPECT_EQ(r.body.find(dir), std::string::npos);
    }
    EXPECT_GE(Metric(h, "strata_kv_blocks_lost_total"), 1);
    EXPECT_GE(Metric(h, "strata_kv_checksum_failures_total"), 1);
    EXPECT_EQ(Metric(h, "strata_kv_disk_ram_only"), 0);
  }
  std::filesystem::remove_all(dir);
}

TEST(ServerKvFaultTest, FullDiskAnswersFromRamAndRecovers) {
  auto mem = NewMemEnv();
  Faults faults;
  FaultInjectionEnv env(mem.get(), &faults);
  TierSetup t;
  EngineParams p = t.Params(16);
  p.kv_tiers.ram_bytes = 8 * BlockBytes(16);  // one request of ~105 tokens fits; two do not
  p.kv_tiers.disk_dir = "/kv";
  p.env = &env;
  ServerHarness h({}, p);
  std::string want;
  {
    ServerHarness reference;
    want = TextOf(Complete(reference, "Once upon a time", 100));
  }
  EXPECT_EQ(Complete(h, "Lily had a", 100).status, 200);  // its blocks stay cached, in RAM
  faults.write_budget = 0;  // "no space left on device"
  EXPECT_EQ(TextOf(Complete(h, "Once upon a time", 100)), want);
  EXPECT_EQ(Metric(h, "strata_kv_disk_ram_only"), 1);
  EXPECT_EQ(Metric(h, "strata_kv_disk_ram_only_fallbacks_total"), 1);
  EXPECT_GT(Metric(h, "strata_kv_disk_write_failures_total"), 0);
  EXPECT_EQ(TextOf(Complete(h, "Once upon a time", 100)), want);
  faults.write_budget = INT64_MAX;
  for (int i = 0; i < 20 && Metric(h, "strata_kv_disk_ram_only") == 1; ++i)
    EXPECT_EQ(TextOf(Complete(h, "Once upon a time", 100)), want);
  EXPECT_EQ(Metric(h, "strata_kv_disk_ram_only"), 0);
  EXPECT_EQ(Metric(h, "strata_engine_requests_rejected_total"), 0);
}

TEST(ServerKvFaultTest, FullDiskWithNoRamIs503NotQueueFull) {
  auto mem = NewMemEnv();
  Faults faults;
  FaultInjectionEnv env(mem.get(), &faults);
  TierSetup t;
  EngineParams p = t.Params(8);
  p.kv_tiers.ram_bytes = 0;
  p.kv_tiers.disk_dir = "/kv";
  p.env = &env;
  ServerHarness h({}, p);
  EXPECT_EQ(Complete(h, "Once upon a time", 40).status, 200);
  faults.write_budget = 0;
  const Reply r = Complete(h, "Once upon a time", 40);
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.j["error"]["code"], "unavailable") << r.body;
  EXPECT_EQ(r.j["error"]["type"], "server_error");
  EXPECT_NE(r.j["error"]["message"].get<std::string>().find("retry later"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("/kv"), std::string::npos) << r.body;
  EXPECT_EQ(Metric(h, "strata_engine_requests_rejected_total"), 0);
  EXPECT_EQ(Metric(h, "strata_http_requests_total{endpoint=\"/v1/completions\",status=\"429\"}"), -1);
  faults.write_budget = INT64_MAX;
  EXPECT_EQ(Complete(h, "Once upon a time", 40).status, 200);  // the next request finds the disk again
  EXPECT_EQ(Metric(h, "strata_kv_disk_ram_only"), 0);
}

// As `--kv-ram 4 blocks` and as `--kv-ram 0 --kv-disk DIR --kv-disk-max 4 blocks`:
// a prompt longer than the 64 positions the KV budget holds can never fit.
TEST(ServerKvFaultTest, PromptBeyondTheKvBudgetIsContextLengthExceeded) {
  auto mem = NewMemEnv();
  TierSetup t;
  EngineParams ram = t.Params(16);
  ram.kv_tiers.ram_bytes = 4 * BlockBytes(16);
  EngineParams disk = t.Params(16);
  disk.kv_tiers.ram_bytes = 0;
  disk.kv_tiers.disk_dir = "/kv";
  disk.kv_tiers.disk_bytes = 4 * BlockBytes(16);
  disk.env = mem.get();
  for (const EngineParams& p : {ram, disk}) {
    ServerHarness h({}, p);
    const Reply r = Complete(h, kPrefix + kPrefix, 10);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.j["error"]["code"], "context_length_exceeded") << r.body;
    const Reply fits = Complete(h, "Once upon a time", 64);  // runs until the budget is full
    EXPECT_EQ(fits.status, 200) << fits.body;
    EXPECT_EQ(fits.j["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(fits.j["usage"]["total_tokens"], 64);
    EXPECT_EQ(Metric(h, "strata_engine_requests_rejected_total"), 0);
  }
}

// The mapping every engine status goes through on its way to a client.
TEST(ServerKvFaultTest, StatusCodesMapToWhatTheClientShouldDo) {
  struct Case {
    Status status;
    int http;
    const char* code;  // "" renders as null
  } cases[] = {
      {Status::ResourceExhausted("the request queue is full"), 429, "queue_full"},
      {Status::Unavailable("the KV cache cannot hold this request now"), 503, "unavailable"},
      {Status::OutOfRange("the prompt has 70 tokens; the context holds 64"), 400, "context_length_exceeded"},
      {Status::InvalidArgument("token id 99999 out of range"), 400, ""},
      {Status::Corrupt("KV block 3 layer 0: its disk tier copy failed its checksum"), 500, "internal_error"},
  };
  for (const Case& c : cases) {
    const server::ApiError e = server::ApiError::FromStatus(c.status);
    EXPECT_EQ(e.http_status, c.http) << c.status.ToString();
    EXPECT_EQ(e.code, c.code) << c.status.ToString();
    EXPECT_NE(e.message.find(c.status.message()), std::string::npos);
  }
}

}  // namespace
}  // namespace strata::testing
