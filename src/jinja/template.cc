#include "jinja/template.h"

#include <fmt/format.h>

#include "core/utf8.h"
#include "jinja/parser.h"
#include "jinja/py_string.h"

namespace strata::jinja {

Status Template::Parse(std::string_view source, const TemplateOptions& options, std::unique_ptr<Template>* out) {
  if (source.size() > options.max_source_bytes)
    return Status::InvalidArgument(
        fmt::format("template is {} bytes, larger than the limit ({})", source.size(), options.max_source_bytes));
  if (!utf8::IsValid(source)) return Status::InvalidArgument("template is not valid UTF-8");
  std::vector<Token> tokens;
  STRATA_RETURN_IF_ERROR(Tokenize(source, options.syntax, &tokens));
  std::unique_ptr<Template> t(new Template());
  t->options_ = options;
  STRATA_RETURN_IF_ERROR(jinja::Parse(std::move(tokens), options.limits.max_parse_depth, &t->body_));
  *out = std::move(t);
  return Status::Ok();
}

Status Template::Render(const nlohmann::ordered_json& variables, std::string* out, RenderError* error) const {
  if (!variables.is_object()) return Status::InvalidArgument("template variables must be a JSON object");
  Value v;
  if (Status s = ValueFromJson(variables, options_.limits.max_value_depth, &v); !s.ok()) {
    if (error != nullptr) *error = RenderError{RenderError::Kind::kRuntime, 0, s.message()};
    return s;
  }
  return Render(v, out, error);
}

Status Template::Render(const Value& variables, std::string* out, RenderError* error) const {
  Renderer::Clock clock = options_.clock ? options_.clock : [] { return std::chrono::system_clock::now(); };
  Renderer r(options_.limits, std::move(clock));
  return r.Render(body_, variables, out, error);
}

Status ValueFromJson(const nlohmann::ordered_json& json, int max_depth, Value* out) {
  if (max_depth <= 0) return Status::InvalidArgument("JSON nested too deeply for the template");
  switch (json.type()) {
    case nlohmann::ordered_json::value_t::null: *out = Value::None(); return Status::Ok();
    case nlohmann::ordered_json::value_t::boolean: *out = Value::Bool(json.get<bool>()); return Status::Ok();
    case nlohmann::ordered_json::value_t::number_integer: *out = Value::Int(json.get<int64_t>()); return Status::Ok();
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = json.get<uint64_t>();
      *out = u <= static_cast<uint64_t>(INT64_MAX) ? Value::Int(static_cast<int64_t>(u))
                                                   : Value::Float(static_cast<double>(u));
      return Status::Ok();
    }
    case nlohmann::ordered_json::value_t::number_float: *out = Value::Float(json.get<double>()); return Status::Ok();
    case nlohmann::ordered_json::value_t::string: {
      const std::string& s = json.get_ref<const std::string&>();
      if (!utf8::IsValid(s)) return Status::InvalidArgument("a template variable holds invalid UTF-8");
      *out = Value::String(s);
      return Status::Ok();
    }
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items(json.size());
      for (size_t i = 0; i < json.size(); ++i) STRATA_RETURN_IF_ERROR(ValueFromJson(json[i], max_depth - 1, &items[i]));
      *out = Value::List(std::move(items));
      return Status::Ok();
    }
    case nlohmann::ordered_json::value_t::object: {
      auto d = std::make_shared<DictData>();
      for (const auto& [key, value] : json.items()) {
        if (!utf8::IsValid(key)) return Status::InvalidArgument("a template variable holds invalid UTF-8");
        Value v;
        STRATA_RETURN_IF_ERROR(ValueFromJson(value, max_depth - 1, &v));
        d->Set(key, std::move(v));
      }
      *out = Value::Dict(std::move(d));
      return Status::Ok();
    }
    default: return Status::InvalidArgument("unsupported JSON value in template variables");
  }
}

}  // namespace strata::jinja
