#include "server/session_record.h"

#include <algorithm>

namespace strata::server {
namespace {

using json = nlohmann::ordered_json;

json PointJson(const SessionPoint& p) {
  json counts = json::array();
  for (const auto& [token, n] : p.counts) counts.push_back({token, n});
  return {{"tokens", p.tokens}, {"n_kv", p.n_kv}, {"messages", p.messages}, {"rng", p.rng}, {"counts", counts}};
}

bool ReadPoint(const json& j, SessionPoint* p) {
  if (!j.is_object()) return false;
  for (const char* k : {"tokens", "n_kv", "messages"})
    if (!j.contains(k) || !j[k].is_number_integer() || j[k].get<int64_t>() < 0 || j[k].get<int64_t>() > INT32_MAX)
      return false;
  const auto rng = j.find("rng");
  if (rng == j.end() || !rng->is_array() || rng->size() != 4) return false;
  for (const json& r : *rng)
    if (!r.is_number_unsigned() && !(r.is_number_integer() && r.get<int64_t>() >= 0)) return false;
  p->tokens = j["tokens"].get<int32_t>();
  p->n_kv = j["n_kv"].get<int32_t>();
  p->messages = j["messages"].get<int32_t>();
  for (size_t i = 0; i < 4; ++i) p->rng[i] = (*rng)[i].get<uint64_t>();
  if (const auto counts = j.find("counts"); counts != j.end()) {
    if (!counts->is_array()) return false;
    for (const json& c : *counts) {
      if (!c.is_array() || c.size() != 2 || !c[0].is_number_integer() || !c[1].is_number_integer() ||
          c[0].get<int64_t>() < 0 || c[0].get<int64_t>() > INT32_MAX || c[1].get<int64_t>() < 1 ||
          c[1].get<int64_t>() > INT32_MAX)
        return false;
      p->counts.emplace_back(c[0].get<int32_t>(), c[1].get<int32_t>());
    }
  }
  return p->n_kv <= p->tokens;
}

bool ReadPoints(const json& j, const char* key, std::vector<SessionPoint>* out) {
  const auto it = j.find(key);
  if (it == j.end()) return true;
  if (!it->is_array()) return false;
  for (const json& p : *it)
    if (!ReadPoint(p, &out->emplace_back())) return false;
  return true;
}

}  // namespace

const char* SessionKindName(SessionKind kind) {
  switch (kind) {
    case SessionKind::kNew: return "new";
    case SessionKind::kCompletion: return "completion";
    case SessionKind::kChat: return "chat";
  }
  return "new";
}

const SessionPoint* SessionRecord::PointAt(int32_t n, int32_t n_messages) const {
  for (auto it = points.rbegin(); it != points.rend(); ++it)
    if (it->tokens == n && (n_messages < 0 || it->messages == n_messages)) return &*it;
  return nullptr;
}

void SessionRecord::AddPoint(const SessionPoint& p) {
  points.push_back(p);
  if (points.size() > kMaxPoints) points.erase(points.begin());
}

void SessionRecord::FitToTokens(int32_t n) {
  size_t keep = 0;
  while (keep < ends.size() && ends[keep] <= n) ++keep;
  ends.resize(keep);
  messages.erase(messages.begin() + static_cast<ptrdiff_t>(keep), messages.end());
  auto beyond = [&](const SessionPoint& p) { return p.tokens > n || p.messages > static_cast<int32_t>(keep); };
  points.erase(std::remove_if(points.begin(), points.end(), beyond), points.end());
  stack.erase(std::remove_if(stack.begin(), stack.end(), beyond), stack.end());
  tokens = n;
}

Status ParseSessionRecord(std::string_view meta, int32_t n_tokens, SessionRecord* out) {
  *out = SessionRecord();
  if (meta.empty()) {
    out->kind = n_tokens > 0 ? SessionKind::kCompletion : SessionKind::kNew;
    out->tokens = n_tokens;
    return Status::Ok();
  }
  const json j = json::parse(meta, nullptr, /*allow_exceptions=*/false);
  const Status bad = Status::Corrupt("its record of the conversation is damaged");
  if (!j.is_object()) return bad;
  const auto kind = j.find("kind");
  if (kind == j.end() || !kind->is_string()) return bad;
  if (*kind == "completion") {
    out->kind = SessionKind::kCompletion;
  } else if (*kind == "chat") {
    out->kind = SessionKind::kChat;
  } else if (*kind == "new") {
    out->kind = SessionKind::kNew;
  } else {
    return bad;
  }
  const auto tokens = j.find("tokens");
  if (tokens == j.end() || !tokens->is_number_integer() || tokens->get<int64_t>() < 0 ||
      tokens->get<int64_t>() > INT32_MAX)
    return bad;
  out->tokens = tokens->get<int32_t>();
  if (const auto m = j.find("messages"); m != j.end()) {
    if (!m->is_array()) return bad;
    for (const json& msg : *m)
      if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string()) return bad;
    out->messages = *m;
  }
  if (const auto e = j.find("ends"); e != j.end()) {
    if (!e->is_array() || e->size() != out->messages.size()) return bad;
    for (const json& x : *e) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX) return bad;
      out->ends.push_back(x.get<int32_t>());
    }
  } else if (!out->messages.empty()) {
    return bad;
  }
  if (!ReadPoints(j, "points", &out->points) || !ReadPoints(j, "stack", &out->stack)) return bad;
  // Changed outside the server (strata run, strata session rollback): keep what still holds.
  if (out->tokens != n_tokens) out->FitToTokens(std::min(out->tokens, n_tokens));
  out->tokens = n_tokens;
  return Status::Ok();
}

std::string EncodeSessionRecord(const SessionRecord& r) {
  json j = {{"kind", SessionKindName(r.kind)}, {"tokens", r.tokens}};
  if (r.kind == SessionKind::kChat) {
    j["messages"] = r.messages;
    j["ends"] = r.ends;
  }
  json points = json::array(), stack = json::array();
  for (const SessionPoint& p : r.points) points.push_back(PointJson(p));
  for (const SessionPoint& p : r.stack) stack.push_back(PointJson(p));
  j["points"] = std::move(points);
  j["stack"] = std::move(stack);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace strata::server
