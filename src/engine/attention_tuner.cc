#include "engine/attention_tuner.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <utility>
#include <vector>
#include <xxhash.h>

#include "core/rng.h"

namespace strata {
namespace {

constexpr std::string_view kHeader = "strata attention grid cache v1\n";
constexpr std::string_view kCpuPrefix = "cpu ";
constexpr std::string_view kSumPrefix = "xxh3 ";

struct CacheFile {
  std::string cpu;
  std::vector<std::pair<std::string, AttentionGrid>> entries;
};

bool ParseInt(std::string_view s, int32_t* v) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && end == s.data() + s.size();
}

// False unless data is a complete, checksummed cache file of this version.
bool ParseCache(std::string_view data, CacheFile* out) {
  if (data.size() < kHeader.size() || data.substr(0, kHeader.size()) != kHeader || data.back() != '\n') return false;
  const size_t sum_at = data.rfind('\n', data.size() - 2) + 1;
  const std::string_view sum_line = data.substr(sum_at, data.size() - 1 - sum_at);
  if (sum_line.substr(0, kSumPrefix.size()) != kSumPrefix) return false;
  uint64_t sum = 0;
  const std::string_view hex = sum_line.substr(kSumPrefix.size());
  const auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), sum, 16);
  if (ec != std::errc() || end != hex.data() + hex.size() || sum != XXH3_64bits(data.data(), sum_at)) return false;

  std::string_view body = data.substr(kHeader.size(), sum_at - kHeader.size());
  bool have_cpu = false;
  while (!body.empty()) {
    const size_t nl = body.find('\n');
    const std::string_view line = body.substr(0, nl);
    body.remove_prefix(nl + 1);
    if (!have_cpu) {
      if (line.substr(0, kCpuPrefix.size()) != kCpuPrefix) return false;
      out->cpu = std::string(line.substr(kCpuPrefix.size()));
      have_cpu = true;
      continue;
    }
    const size_t tab = line.find('\t'), space = line.rfind(' ');
    if (tab == std::string_view::npos || space == std::string_view::npos || space < tab) return false;
    AttentionGrid g;
    if (!ParseInt(line.substr(tab + 1, space - tab - 1), &g.q_tile) || !ParseInt(line.substr(space + 1), &g.split_blocks) ||
        !g.Valid())
      return false;
    out->entries.emplace_back(std::string(line.substr(0, tab)), g);
  }
  return have_cpu;
}

std::string SerializeCache(const CacheFile& c) {
  std::string s(kHeader);
  s += fmt::format("{}{}\n", kCpuPrefix, c.cpu);
  for (const auto& [key, g] : c.entries) s += fmt::format("{}\t{} {}\n", key, g.q_tile, g.split_blocks);
  s += fmt::format("{}{:016x}\n", kSumPrefix, XXH3_64bits(s.data(), s.size()));
  return s;
}

std::optional<CacheFile> ReadCache(Env* env, const std::string& path) {
  std::string data;
  CacheFile c;
  if (!env->FileExists(path) || !env->ReadFile(path, kMaxTuneCacheBytes, &data).ok() || !ParseCache(data, &c))
    return std::nullopt;
  return c;
}

// Synthetic KV of one layer: nb blocks of random rows, one sequence.
struct SyntheticKv {
  KvLayout layout;
  std::vector<std::vector<uint8_t>> storage;
  std::vector<std::vector<uint8_t*>> slices;  // [1][nb]

  SyntheticKv(const AttentionTuneKey& key, int32_t nb, Rng* rng) {
    layout = KvLayout{1, key.n_head_kv, key.head_dim, key.block_tokens, key.kv_type};
    std::vector<float> row(static_cast<size_t>(key.head_dim));
    const size_t rows = layout.slice_bytes() / layout.row_bytes();
    slices.resize(1);
    for (int32_t b = 0; b < nb; ++b) {
      std::vector<uint8_t>& s = storage.emplace_back(layout.slice_bytes());
      for (size_t r = 0; r < rows; ++r) {
        for (float& x : row) x = 2.0f * rng->NextFloat() - 1.0f;
        kernels::QuantizeRow(layout.type, row.data(), s.data() + r * layout.row_bytes(), key.head_dim);
      }
      slices[0].push_back(s.data());
    }
  }
};

// Seconds for one AttentionPass::Run on each grid, the best of rounds run in
// turn (so drift in machine load hits every candidate alike); stops after
// min_rounds once budget_s is spent.
std::vector<double> TimeGrids(const std::vector<AttentionGrid>& grids, AttentionPass& pass,
                              const std::vector<AttentionQuery>& queries, const std::vector<float>& q,
                              const SyntheticKv& kv, kernels::Path path, double budget_s) {
  using Clock = std::chrono::steady_clock;
  constexpr int kMinRounds = 3, kMaxRounds = 15;
  std::vector<float> out(q.size());
  std::vector<double> best(grids.size(), std::numeric_limits<double>::infinity());
  // Plain causal attention: the grid's cost does not depend on the scale.
  const AttentionMath math{{1.0f / std::sqrt(static_cast<float>(kv.layout.head_dim))}};
  for (const AttentionGrid& g : grids) pass.Run(g, math, queries, q.data(), kv.slices, out.data(), nullptr, path);  // warm-up
  const Clock::time_point start = Clock::now();
  for (int round = 0; round < kMaxRounds; ++round) {
    for (size_t i = 0; i < grids.size(); ++i) {
      const Clock::time_point t0 = Clock::now();
      pass.Run(grids[i], math, queries, q.data(), kv.slices, out.data(), nullptr, path);
      best[i] = std::min(best[i], std::chrono::duration<double>(Clock::now() - t0).count());
    }
    if (round + 1 >= kMinRounds && std::chrono::duration<double>(Clock::now() - start).count() > budget_s) break;
  }
  return best;
}

// The first candidate unless a later one is at least 3% faster than the best
// so far: near-ties (noise) keep the simpler grid.
size_t Fastest(const std::vector<double>& t) {
  size_t best = 0;
  for (size_t i = 1; i < t.size(); ++i)
    if (t[i] < 0.97 * t[best]) best = i;
  return best;
}

}  // namespace

Status CheckTuneCachePath(Env* env, const std::string& path) {
  std::string data;
  Status s = env->ReadFile(path, kMaxTuneCacheBytes, &data);
  return s.code() == StatusCode::kNotFound ? Status::Ok() : s;
}

std::string AttentionTuneKey::ToString() const {
  return fmt::format("{} d{} h{} kv{} {} b{} t{}", kernels::PathName(path), head_dim, n_head, n_head_kv,
                     DTypeName(kv_type), block_tokens, n_threads);
}

AttentionGrid MeasureAttentionGrid(const AttentionTuneKey& key, ThreadPool& pool) {
  const int32_t group = key.n_head / key.n_head_kv, B = key.block_tokens;
  const int64_t E = static_cast<int64_t>(key.n_head) * key.head_dim;
  Rng rng(0x5EED);
  auto random_q = [&](size_t n) {
    std::vector<float> q(n * static_cast<size_t>(E));
    for (float& x : q) x = 2.0f * rng.NextFloat() - 1.0f;
    return q;
  };
  AttentionGrid grid;

  // Query tile on a prefill: 128 tokens after 128 cached ones.
  {
    constexpr int32_t kPrompt = 128, kDepth = 128;
    SyntheticKv kv(key, (kDepth + kPrompt + B - 1) / B, &rng);
    AttentionPass pass(kv.layout, key.n_head, pool);
    std::vector<AttentionQuery> queries;
    for (int32_t i = 0; i < kPrompt; ++i) queries.push_back({0, kDepth + i});
    std::vector<AttentionGrid> grids;
    for (int32_t t = 1; t <= AttentionGrid::kMaxQueryTile && (t == 1 || t * group <= kernels::kTileRows); t *= 2)
      grids.push_back({t, 0});
    grid.q_tile = grids[Fastest(TimeGrids(grids, pass, queries, random_q(queries.size()), kv, key.path, 0.12))].q_tile;
  }
  // KV split on a decode step at depth 2048: no limit, then ever smaller ranges.
  {
    constexpr int32_t kDepth = 2048;
    const int32_t nb = (kDepth + B - 1) / B;
    SyntheticKv kv(key, nb, &rng);
    AttentionPass pass(kv.layout, key.n_head, pool);
    const std::vector<AttentionQuery> queries = {{0, kDepth - 1}};
    std::vector<AttentionGrid> grids = {{grid.q_tile, 0}};
    for (int32_t s = 32; s >= 1; s /= 2)
      if (s < nb) grids.push_back({grid.q_tile, s});
    grid.split_blocks = grids[Fastest(TimeGrids(grids, pass, queries, random_q(1), kv, key.path, 0.08))].split_blocks;
  }
  return grid;
}

std::optional<AttentionGrid> LoadTunedGrid(Env* env, const std::string& path, const std::string& cpu,
                                           const AttentionTuneKey& key) {
  std::optional<CacheFile> c = ReadCache(env, path);
  if (!c || c->cpu != cpu) return std::nullopt;
  const std::string k = key.ToString();
  for (const auto& [name, g] : c->entries)
    if (name == k) return g;
  return std::nullopt;
}

Status StoreTunedGrid(Env* env, const std::string& path, const std::string& cpu, const AttentionTuneKey& key,
                      const AttentionGrid& grid) {
  std::optional<CacheFile> c = ReadCache(env, path);
  if (!c || c->cpu != cpu) c = CacheFile{cpu, {}};
  const std::string k = key.ToString();
  std::erase_if(c->entries, [&](const auto& e) { return e.first == k; });
  c->entries.emplace_back(k, grid);
  STRATA_RETURN_IF_ERROR(env->CreateDirs(DirName(path)));
  return WriteFileAtomic(env, path, SerializeCache(*c));
}

TunedGrid TuneAttentionGrid(Env* env, const std::string& path, const AttentionTuneKey& key, ThreadPool& pool) {
  const std::string cpu = kernels::CpuModelName();
  TunedGrid t;
  if (std::optional<AttentionGrid> g = LoadTunedGrid(env, path, cpu, key)) {
    t.grid = *g;
    return t;
  }
  t.grid = MeasureAttentionGrid(key, pool);
  t.measured = true;
  t.store = StoreTunedGrid(env, path, cpu, key, t.grid);
  return t;
}

AttentionGrid SelectAttentionGrid(const std::optional<AttentionGrid>& fixed, Env* env, const std::string& cache_path,
                                  const KvLayout& layout, int32_t n_head, ThreadPool& pool) {
  if (fixed) return *fixed;
  if (cache_path.empty()) return AttentionGrid{};
  const AttentionTuneKey key{kernels::BestPath(), layout.head_dim,     n_head,          layout.n_head_kv,
                             layout.type,         layout.block_tokens, pool.n_threads()};
  return TuneAttentionGrid(env, cache_path, key, pool).grid;
}

}  // namespace strata
