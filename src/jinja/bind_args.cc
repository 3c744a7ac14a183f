// BindArgs (builtins.h): Python's binding of call arguments to parameters.
#include <fmt/format.h>

#include "jinja/builtins.h"

namespace strata::jinja {

Status BindArgs(std::string_view function, const CallArgs& args, std::initializer_list<Param> params,
                std::vector<Value>* out) {
  out->assign(params.size(), Value());
  std::vector<bool> bound(params.size(), false);
  if (args.positional.size() > params.size())
    return Status::InvalidArgument(fmt::format("{}() takes at most {} argument(s) ({} given)", function,
                                               params.size(), args.positional.size()));
  for (size_t i = 0; i < args.positional.size(); ++i) {
    (*out)[i] = args.positional[i];
    bound[i] = true;
  }
  for (const auto& [key, value] : args.keywords) {
    size_t i = 0;
    for (const Param& p : params) {
      if (p.name == key) break;
      ++i;
    }
    if (i == params.size())
      return Status::InvalidArgument(fmt::format("{}() got an unexpected keyword argument '{}'", function, key));
    if (bound[i])
      return Status::InvalidArgument(fmt::format("{}() got multiple values for argument '{}'", function, key));
    (*out)[i] = value;
    bound[i] = true;
  }
  size_t i = 0;
  for (const Param& p : params) {
    if (!bound[i]) {
      if (!p.default_value)
        return Status::InvalidArgument(fmt::format("{}() missing required argument '{}'", function, p.name));
      (*out)[i] = *p.default_value;
    }
    ++i;
  }
  return Status::Ok();
}

}  // namespace strata::jinja
