// strata serve: the OpenAI-compatible HTTP server (src/server/server.h) over
// one model. Logs go to stderr; the first line names the address it listens
// on and whether an API key is required. SIGINT/SIGTERM stop it gracefully
// (exit 0): no new connections, idle ones closed, running generations given
// --shutdown-grace to finish.
//
// Under mpirun (`mpirun -np N strata serve --split tensor|layer`), rank 0
// loads its shard and serves HTTP; the other ranks load theirs and run rank
// 0's step plans (engine/rank_server.h). An idle rank 0 pings them every
// --mpi-keepalive seconds; a rank that dies or stops answering ends the job
// (dist/cluster.h). Sessions are saved whole (every rank's part of the KV).
// Speculation, LoRA adapters and the KV disk tier hold one process's state
// and are refused there.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>

#include "cli/chat_template_flags.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/env.h"
#include "engine/engine.h"
#include "engine/load_summary.h"
#include "engine/rank_server.h"
#include "model/lora_adapter.h"
#include "model/model.h"
#include "server/chat_template.h"
#include "server/server.h"

namespace strata::cli {
namespace {

// File descriptors kept for the model, the KV disk tier, sessions and logs
// when sizing --max-connections against the process's limit.
constexpr uint64_t kReservedFds = 64;

struct ServeOptions {
  std::string model;
  std::string tokenizer;
  ChatTemplateFlags chat_template;
  EngineParams engine;
  server::ServerOptions server;
  std::string kv_type;      // empty: the model's default
  std::string kv_ram;       // sizes with K/M/G suffixes; empty: unlimited
  std::string kv_disk_max;
  TuneFlags tune;
  SpecFlags spec;
  SamplingFlags sampling;  // for requests that leave a setting out
  std::vector<std::string> api_keys;  // --api-key, repeatable
  std::string session_disk_max = "16G";
  double shutdown_grace_s = 10;
  double head_timeout_s = 10;
  double body_timeout_s = 30;
  std::string log_format = "text";  // the access log's: text or json
  std::vector<std::string> loras;  // --lora [NAME=]FILE[:SCALE]
  MpiFlags mpi;
  double mpi_keepalive_s = 30;
};

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// Raises the soft limit on open files to the hard limit and fits
// --max-connections under it (each connection holds one descriptor).
void FitConnectionsToFdLimit(size_t* max_connections) {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return;
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
    getrlimit(RLIMIT_NOFILE, &r);
  }
  if (r.rlim_cur == RLIM_INFINITY || r.rlim_cur <= kReservedFds) return;
  const uint64_t fit = r.rlim_cur - kReservedFds;
  if (*max_connections > fit) {
    std::fprintf(stderr, "strata serve: warning: --max-connections lowered to %llu (open file limit %llu)\n",
                 static_cast<unsigned long long>(fit), static_cast<unsigned long long>(r.rlim_cur));
    *max_connections = fit;
  }
}

// "host:port" for a URL: IPv6 literals in brackets.
std::string UrlAuthority(const std::string& host, int port) {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

// Applies the --kv-* and tuner flags to the engine parameters.
void ApplyKvOptions(ServeOptions& o) {
  o.engine.tune_cache_path = TuneCachePath(o.tune);
  if (!o.kv_type.empty()) {
    std::optional<DType> t = ParseDType(o.kv_type);
    if (!t) Fail("--kv-type", Status::InvalidArgument("unknown KV type '" + o.kv_type + "' (f32, f16, q8_0)"));
    o.engine.kv_type = *t;
  }
  for (auto [text, field, flag] : {std::tuple{&o.kv_ram, &o.engine.kv_tiers.ram_bytes, "--kv-ram"},
                                   std::tuple{&o.kv_disk_max, &o.engine.kv_tiers.disk_bytes, "--kv-disk-max"}}) {
    if (text->empty()) continue;
    std::optional<uint64_t> v = ParseSize(*text);
    if (!v) Fail(flag, Status::InvalidArgument("'" + *text + "' is not a size (e.g. 512M, 4G)"));
    *field = *v;
  }
}

// SIGINT/SIGTERM, blocked in every thread and taken by sigwait in one.
sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

// What a server under mpirun cannot do: its state lives in rank 0's process.
void CheckMpiOptions(const ServeOptions& o) {
  const std::pair<bool, const char*> refused[] = {
      {!o.spec.spec.empty() || !o.spec.draft_model.empty(), "speculative decoding under mpirun"},
      {!o.loras.empty(), "LoRA adapters under mpirun"},
      {!o.engine.kv_tiers.disk_dir.empty(), "a KV disk tier under mpirun (the other ranks hold their KV in RAM)"},
  };
  for (const auto& [given, what] : refused)
    if (given) Fail("serve", Status::Unsupported(what));
}

void Serve(ServeOptions& o) {
  // Before any thread starts (MPI's too), so that every thread inherits the mask.
  const sigset_t stop_signals = StopSignals();
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ApplyKvOptions(o);
  // Under mpirun rank 0 serves HTTP; the others run its plans.
  Cluster* cluster = JoinCluster(o.mpi);
  const std::string model_path = o.model.empty() ? DefaultModelPath() : o.model;
  if (cluster != nullptr) {
    CheckMpiOptions(o);
    if (cluster->rank() != 0) {
      // mpirun's SIGTERM ends this rank (dist/cluster.h's handler, on this thread).
      pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
      ServeOtherRank(*cluster, model_path, o.tokenizer, o.engine.n_threads, TuneCachePath(o.tune),
                     o.engine.kv_tiers.ram_bytes);
      return;
    }
  }
  o.engine.keepalive_s = o.mpi_keepalive_s;

  // CLI11 takes an empty variable for an absent one; auth must not turn off silently.
  if (const char* env = std::getenv("STRATA_API_KEY"); env != nullptr && *env == '\0' && o.api_keys.empty())
    Fail("--api-key", Status::InvalidArgument("STRATA_API_KEY is set but empty (unset it, or set a key)"));
  if (!o.api_keys.empty()) {
    o.server.api_key = o.api_keys.front();
    o.server.more_api_keys.assign(o.api_keys.begin() + 1, o.api_keys.end());
  }
  if (!o.server.sessions.dir.empty()) {
    std::optional<uint64_t> v = ParseSize(o.session_disk_max);
    if (!v) Fail("--session-disk-max", Status::InvalidArgument("'" + o.session_disk_max + "' is not a size (e.g. 16G)"));
    o.server.sessions.disk_max = *v;
  }

  const std::string spec = o.spec.Method();
  ModelLoadOptions mo;
  mo.path = model_path;
  mo.tokenizer_path = o.tokenizer;
  std::unique_ptr<Model> model;
  CheckOk("cannot load model " + mo.path, LoadRankModel(Env::Default(), mo, &model));
  const server::ChatTemplate chat_template = PickChatTemplate(o.chat_template, mo.path, model->vocab(), "strata serve");
  // Speculative decoding: the draft model outlives the engine.
  std::unique_ptr<Model> draft;
  if (spec == "draft") {
    ModelLoadOptions dmo;
    dmo.path = o.spec.draft_model;
    CheckOk("cannot load draft model " + dmo.path, Model::Load(Env::Default(), dmo, &draft));
  }
  o.engine.spec.method = spec == "draft" ? SpecMethod::kDraftModel : spec == "ngram" ? SpecMethod::kNgram : SpecMethod::kNone;
  o.engine.spec.draft_model = draft.get();
  o.engine.spec.draft_min = o.spec.draft_min;
  o.engine.spec.draft_max = o.spec.draft_max;

  // Each adapter is a model id of its own (its own adapter set).
  std::vector<std::unique_ptr<LoraAdapter>> adapters;
  for (const std::string& text : o.loras) {
    LoraFlag f;
    CheckOk("--lora", ParseLoraFlag(text, &f));
    CheckOk("--lora", LoraAdapter::Load(Env::Default(), f.path, *model, &adapters.emplace_back()));
    o.engine.adapters.push_back(LoraSet{{adapters.back().get(), f.scale}});
    o.server.adapter_ids.push_back(f.name);
    std::fprintf(stderr, "strata serve: LoRA adapter %s from %s (scale %g, %d matrices, rank %d)\n", f.name.c_str(),
                 f.path.c_str(), static_cast<double>(f.scale), adapters.back()->n_matrices(), adapters.back()->max_rank());
  }
  std::unique_ptr<Engine> engine;
  CheckOk(spec == "draft" ? "--draft-model " + o.spec.draft_model : "engine", Engine::Create(*model, o.engine, &engine));
  o.server.sampling.temperature = o.sampling.temperature;
  o.server.sampling.top_k = o.sampling.top_k;
  o.server.sampling.top_p = o.sampling.top_p;
  o.server.sampling.min_p = o.sampling.min_p;
  o.server.sampling.repeat_penalty = o.sampling.repeat_penalty;
  CheckOk("--log-format", server::ParseLogFormat(o.log_format, &o.server.log_format)
                              ? Status::Ok()
                              : Status::InvalidArgument("'" + o.log_format + "' is not a log format (text, json)"));
  o.server.access_log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  o.server.shutdown_grace = Millis(o.shutdown_grace_s);
  o.server.limits.head_timeout = Millis(o.head_timeout_s);
  o.server.limits.body_timeout = Millis(o.body_timeout_s);
  FitConnectionsToFdLimit(&o.server.limits.max_connections);
  std::unique_ptr<server::Server> srv;
  CheckOk("server", server::Server::Create(engine.get(), chat_template, o.server, &srv));
  int port = 0;
  CheckOk("server", srv->Bind(&port));
  std::fprintf(stderr, "strata serve: listening on http://%s (model %s, context %d, chat template %s, %s)\n",
               UrlAuthority(o.server.host, port).c_str(), model->name().c_str(), engine->n_ctx(),
               std::string(chat_template.name()).c_str(),
               o.server.api_key.empty() ? "no API key: anyone who can connect may use it" : "API key required");
  std::fprintf(stderr, "strata serve: %s\n", LoadSummary(*model, engine->n_ctx(), engine->kv_layout()).c_str());
  if (!spec.empty())
    std::fprintf(stderr, "strata serve: speculative decoding: %s, %d-%d drafted tokens, up to %d generating requests\n",
                 spec == "draft" ? ("draft model " + draft->name()).c_str() : "prompt lookup", o.spec.draft_min,
                 o.spec.draft_max, o.engine.spec.max_batch);
  if (!o.server.sessions.dir.empty())
    std::fprintf(stderr, "strata serve: sessions in %s (at most %d per key, %s on disk)\n",
                 o.server.sessions.dir.c_str(), o.server.sessions.max_sessions, o.session_disk_max.c_str());

  std::thread signals([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    srv->Shutdown();
  });
  const Status served = srv->Serve();
  pthread_kill(signals.native_handle(), SIGTERM);  // wakes sigwait if no signal came
  signals.join();
  srv.reset();
  if (const std::optional<KvNodeStats> nodes = engine->Stats().kv_nodes)
    std::fprintf(stderr, "strata serve: %s\n", KvNodesSummary(*nodes).c_str());
  engine.reset();
  CheckOk("server", served);
  std::fprintf(stderr, "strata serve: stopped\n");
}

}  // namespace

void AddServeCommand(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve an OpenAI-compatible HTTP API (see docs/SERVER.md)");
  cmd->add_option("-m,--model", o->model, "Model file (.gguf or llama2.c .bin); default: the bundled stories260K");
  cmd->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin (for .bin models)");
  cmd->add_option("--host", o->server.host, "Address to bind")->capture_default_str();
  cmd->add_option("--port", o->server.port, "Port (0: any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", o->api_keys,
                  "Require 'Authorization: Bearer KEY' (all but /health); repeatable: each key has its own sessions")
      ->envname("STRATA_API_KEY")
      ->check([](const std::string& key) { return key.empty() ? std::string("the API key must not be empty") : ""; });
  cmd->add_option("--parallel", o->engine.parallel, "Requests generated at once")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("--max-queue", o->engine.max_queue, "Waiting requests beyond which requests get 429 (>= 1)")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_option("-c,--ctx-size", o->engine.n_ctx, "Context per request (0: the model's)")
      ->capture_default_str()->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-t,--threads", o->engine.n_threads, "Compute threads (0: all cores)")->check(CLI::Range(0, 1024));
  AddChatTemplateFlags(cmd, &o->chat_template);
  cmd->add_option("--max-body", o->server.limits.max_body_bytes,
                  "Largest request body in bytes, as sent and after decompression (413 beyond)")
      ->capture_default_str()->check(CLI::Range(size_t{1}, size_t{1} << 30));
  cmd->add_option("--max-connections", o->server.limits.max_connections,
                  "Open connections at most; more get 503")
      ->capture_default_str()->check(CLI::Range(size_t{1}, size_t{1} << 20));
  cmd->add_option("--head-timeout", o->head_timeout_s,
                  "Seconds a connection may take to send a whole request head (also the keep-alive idle time)")
      ->capture_default_str()->check(CLI::Range(0.1, 3600.0));
  cmd->add_option("--body-timeout", o->body_timeout_s, "Seconds a request body may take to arrive (408 beyond)")
      ->capture_default_str()->check(CLI::Range(0.1, 3600.0));
  cmd->add_option("--shutdown-grace", o->shutdown_grace_s,
                  "Seconds running generations may take to finish after SIGTERM/SIGINT")
      ->capture_default_str()->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--allowed-host", o->server.allowed_hosts,
                  "Host header value accepted besides the bound address (repeatable; '*': any)");
  cmd->add_option("--cors-origin", o->server.cors_origins,
                  "Origin allowed to call the API from a browser (repeatable; '*': any); default none");
  cmd->add_option("--http-threads", o->server.io_threads, "Threads serving connections")
      ->capture_default_str()->check(CLI::Range(1, 64));
  cmd->add_option("--max-tokens-limit", o->server.max_tokens_limit, "Largest max_tokens accepted (0: the context size)")
      ->capture_default_str()->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--max-batch", o->engine.max_batch_tokens, "Tokens per forward pass (decode tokens + prompt chunks)")
      ->capture_default_str()->check(CLI::Range(1, 65536));
  cmd->add_option("--kv-type", o->kv_type, "KV cache type: f32, f16, q8_0 (default: f32 for f32 models, else f16)");
  cmd->add_option("--kv-block", o->engine.kv_block_tokens, "Positions per KV block")->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--kv-ram", o->kv_ram, "RAM budget for the KV cache, e.g. 2G");
  cmd->add_option("--kv-disk", o->engine.kv_tiers.disk_dir, "Directory for KV blocks beyond the RAM budget");
  cmd->add_option("--kv-disk-max", o->kv_disk_max, "Disk budget for the KV cache, e.g. 20G");
  cmd->add_flag("!--no-prefix-cache", o->engine.prefix_cache, "Do not reuse cached prompt prefixes");
  cmd->add_option("--log-format", o->log_format,
                  "Access log (one line per request on stderr: method, path, status, tokens, ms): text or json")
      ->capture_default_str()->check(CLI::IsMember({"text", "json"}));
  cmd->add_option("--lora", o->loras,
                  "LoRA adapter (llama.cpp's GGUF format) as [NAME=]FILE[:SCALE], listed on /v1/models as NAME "
                  "(default: the file's name) and chosen by a request's model or lora field (repeatable)")
      ->check(NonEmpty());
  cmd->add_option("--session-dir", o->server.sessions.dir,
                  "Keep sessions (the 'session' request field, /v1/sessions) in this directory: the files `strata "
                  "session` and `strata run --session` use")
      ->check(NonEmpty());
  cmd->add_option("--max-sessions", o->server.sessions.max_sessions, "Sessions per API key at most (with --session-dir)")
      ->capture_default_str()->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--session-disk-max", o->session_disk_max, "Disk space for all session files (with --session-dir)")
      ->capture_default_str();
  AddSamplingFlags(cmd, &o->sampling, " for requests that do not set it");
  AddTuneFlags(cmd, &o->tune);
  AddSpecFlags(cmd, &o->spec);
  cmd->add_option("--spec-max-batch", o->engine.spec.max_batch,
                  "Speculative decoding: steps with more generating requests than this do not draft")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
  AddMpiFlags(cmd, &o->mpi);
  cmd->add_option("--mpi-keepalive", o->mpi_keepalive_s,
                  "Under mpirun: seconds between rank 0's pings while idle; the other ranks end the job after 4 "
                  "missed ones")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 3600.0));
  cmd->callback([o] { Serve(*o); });
}

}  // namespace strata::cli
