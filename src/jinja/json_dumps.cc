#include "jinja/json_dumps.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "jinja/py_string.h"

namespace strata::jinja {
namespace {

class Encoder {
 public:
  Encoder(const JsonDumpsOptions& o, std::string* out)
      : o_(o),
        out_(out),
        item_sep_(o.item_separator.value_or(o.indent ? "," : ", ")),
        key_sep_(o.key_separator.value_or(": ")) {}

  Status Encode(const Value& v, int depth, int level) {
    if (depth <= 0) return Status::ResourceExhausted("values nested too deeply for tojson");
    switch (v.type()) {
      case Value::Type::kNone: out_->append("null"); return Status::Ok();
      case Value::Type::kBool: out_->append(v.boolean() ? "true" : "false"); return Status::Ok();
      case Value::Type::kInt: out_->append(std::to_string(v.integer())); return Status::Ok();
      case Value::Type::kFloat: out_->append(Float(v.real())); return Status::Ok();
      case Value::Type::kString: String(v.str()); return Status::Ok();
      case Value::Type::kSeq:
        if (v.seq().kind == SeqKind::kList || v.seq().kind == SeqKind::kTuple) return Array(v, depth, level);
        break;
      case Value::Type::kDict: return Object(v, depth, level);
      default: break;
    }
    return Status::InvalidArgument(fmt::format("Object of type {} is not JSON serializable", TypeName(v)));
  }

 private:
  static std::string Float(double f) {
    if (std::isnan(f)) return "NaN";
    if (std::isinf(f)) return f < 0 ? "-Infinity" : "Infinity";
    return FloatRepr(f);
  }

  void String(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    auto u4 = [this](uint32_t c) {
      out_->append("\\u");
      for (int k = 3; k >= 0; --k) out_->push_back(kHex[(c >> (4 * k)) & 0xF]);
    };
    out_->push_back('"');
    const std::u32string u = o_.ensure_ascii ? py::Decode(s) : std::u32string();
    const size_t n = o_.ensure_ascii ? u.size() : s.size();
    for (size_t i = 0; i < n; ++i) {
      const uint32_t c = o_.ensure_ascii ? static_cast<uint32_t>(u[i]) : static_cast<unsigned char>(s[i]);
      switch (c) {
        case '"': out_->append("\\\""); continue;
        case '\\': out_->append("\\\\"); continue;
        case '\n': out_->append("\\n"); continue;
        case '\r': out_->append("\\r"); continue;
        case '\t': out_->append("\\t"); continue;
        case '\b': out_->append("\\b"); continue;
        case '\f': out_->append("\\f"); continue;
        default: break;
      }
      if (c < 0x20 || (o_.ensure_ascii && c >= 0x7F)) {
        if (c >= 0x10000) {
          u4(0xD800 + ((c - 0x10000) >> 10));
          u4(0xDC00 + ((c - 0x10000) & 0x3FF));
        } else {
          u4(c);
        }
      } else if (o_.ensure_ascii) {
        out_->push_back(static_cast<char>(c));
      } else {
        out_->push_back(s[i]);
      }
    }
    out_->push_back('"');
  }

  void Newline(int level) {
    if (!o_.indent) return;
    out_->push_back('\n');
    for (int i = 0; i < level; ++i) out_->append(*o_.indent);
  }

  Status Array(const Value& v, int depth, int level) {
    const std::vector<Value>& items = v.seq().items;
    if (items.empty()) {
      out_->append("[]");
      return Status::Ok();
    }
    out_->push_back('[');
    Newline(level + 1);
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) {
        out_->append(item_sep_);
        Newline(level + 1);
      }
      STRATA_RETURN_IF_ERROR(Encode(items[i], depth - 1, level + 1));
    }
    Newline(level);
    out_->push_back(']');
    return Status::Ok();
  }

  // A dict key as json.dumps converts it to a string.
  Status Key(const Value& k, std::string* out) const {
    switch (k.type()) {
      case Value::Type::kString: *out = k.str(); return Status::Ok();
      case Value::Type::kNone: *out = "null"; return Status::Ok();
      case Value::Type::kBool: *out = k.boolean() ? "true" : "false"; return Status::Ok();
      case Value::Type::kInt: *out = std::to_string(k.integer()); return Status::Ok();
      case Value::Type::kFloat: *out = Float(k.real()); return Status::Ok();
      default:
        return Status::InvalidArgument(
            fmt::format("keys must be str, int, float, bool or None, not {}", TypeName(k)));
    }
  }

  Status Object(const Value& v, int depth, int level) {
    const DictData& d = v.dict();
    if (d.entries.empty()) {
      out_->append("{}");
      return Status::Ok();
    }
    std::vector<const std::pair<Value, Value>*> entries;
    for (const auto& e : d.entries) entries.push_back(&e);
    if (o_.sort_keys) {
      Status error;
      std::stable_sort(entries.begin(), entries.end(), [&](const auto* a, const auto* b) {
        bool less = false;
        if (Status s = Less(a->first, b->first, depth, &less); !s.ok() && error.ok()) error = s;
        return less;
      });
      STRATA_RETURN_IF_ERROR(error);
    }
    out_->push_back('{');
    Newline(level + 1);
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i > 0) {
        out_->append(item_sep_);
        Newline(level + 1);
      }
      std::string key;
      STRATA_RETURN_IF_ERROR(Key(entries[i]->first, &key));
      String(key);
      out_->append(key_sep_);
      STRATA_RETURN_IF_ERROR(Encode(entries[i]->second, depth - 1, level + 1));
    }
    Newline(level);
    out_->push_back('}');
    return Status::Ok();
  }

  const JsonDumpsOptions& o_;
  std::string* out_;
  const std::string item_sep_, key_sep_;
};

}  // namespace

Status JsonDumps(const Value& v, const JsonDumpsOptions& options, int depth, std::string* out) {
  return Encoder(options, out).Encode(v, depth, 0);
}

}  // namespace strata::jinja
