// Value: what a Jinja expression evaluates to, with Python's semantics as
// Python's jinja2 exposes them to templates (the interpreter is tested
// byte-for-byte against it). Lists, dicts and objects are shared by
// reference like Python objects: a namespace assigned in a loop, or a list
// popped, is seen through every Value that refers to it.
//
//   Undefined  jinja2's default Undefined: falsy, prints "", iterates empty;
//              most other uses fail with its message.
//   None, Bool, Int (int64; Python's ints are unbounded, overflow is an
//   error here), Float, String (UTF-8; `markup` marks markupsafe.Markup,
//   which escapes what is added to it), Seq (list, tuple, range, one-pass
//   iterator, dict view), Dict (insertion-ordered), Object (namespace,
//   loop, macro, bound method, ...).
//
// Thread-safety: a Value and everything it refers to belong to one render.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"

namespace strata::jinja {

class Renderer;
class Value;

// What a heap Value points to.
struct HeapData {
  virtual ~HeapData() = default;
};

enum class SeqKind : uint8_t {
  kList,
  kTuple,
  kRange,       // range(); indexable, prints as range(a, b[, s])
  kIterator,    // a generator or iterator: one pass, no len(), no index
  kDictItems,   // dict.items() / keys() / values(): len(), no index
  kDictKeys,
  kDictValues,
};

class Value {
 public:
  enum class Type : uint8_t { kUndefined, kNone, kBool, kInt, kFloat, kString, kSeq, kDict, kObject };

  Value() = default;  // Undefined
  // hint: the message an operation on it fails with (UndefinedError's, or
  // the sandbox's SecurityError's for a refused attribute).
  static Value Undefined(std::string hint);
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  static Value Markup(std::string s);
  static Value List(std::vector<Value> items);
  static Value Tuple(std::vector<Value> items);
  static Value Iterator(std::vector<Value> items, std::string name);
  static Value Seq(std::shared_ptr<struct SeqData> seq);
  static Value Dict(std::shared_ptr<struct DictData> dict);
  static Value Object(std::shared_ptr<class Object> object);

  Type type() const { return type_; }
  bool is_undefined() const { return type_ == Type::kUndefined; }
  bool is_none() const { return type_ == Type::kNone; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_int() const { return type_ == Type::kInt; }
  bool is_float() const { return type_ == Type::kFloat; }
  // int, float or bool (Python's bool is an int).
  bool is_number() const { return type_ == Type::kInt || type_ == Type::kFloat || type_ == Type::kBool; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_markup() const { return type_ == Type::kString && markup_; }
  bool is_seq() const { return type_ == Type::kSeq; }
  bool is_dict() const { return type_ == Type::kDict; }
  bool is_object() const { return type_ == Type::kObject; }

  // REQUIRES: the matching type.
  bool boolean() const { return scalar_.b; }
  int64_t integer() const { return type_ == Type::kBool ? scalar_.b : scalar_.i; }
  double real() const { return type_ == Type::kFloat ? scalar_.f : static_cast<double>(integer()); }
  const std::string& str() const { return str_; }
  SeqData& seq() const;
  DictData& dict() const;
  class Object& object() const;
  const std::string& undefined_hint() const { return str_; }
  // Levels of nested sequences and dicts (0 for scalars and objects),
  // counted when the sequence or dict was wrapped into a Value.
  int depth() const;
  // Same heap object (Python's `is`), for sequences, dicts and objects.
  bool SameObject(const Value& other) const { return heap_ != nullptr && heap_ == other.heap_; }

 private:
  Type type_ = Type::kUndefined;
  bool markup_ = false;  // kString: a Markup
  union {
    bool b;
    int64_t i;
    double f;
  } scalar_{};
  std::string str_;  // kString payload; kUndefined hint
  std::shared_ptr<HeapData> heap_;
};

struct SeqData : HeapData {
  int depth = 1;  // set by Value::Seq from the items
  SeqKind kind = SeqKind::kList;
  std::vector<Value> items;
  std::string iterator_name;  // kIterator: "generator", "list_reverseiterator", ...
  bool consumed = false;      // kIterator: a second pass yields nothing
  int64_t range_start = 0, range_stop = 0, range_step = 1;  // kRange, for printing
};

// Python's dict: insertion-ordered; keys are hashable Values (None, bool,
// int, float, str, tuples of those), 1 == 1.0 == True being one key.
struct DictData : HeapData {
  int depth = 1;  // set by Value::Dict from the entries
  std::vector<std::pair<Value, Value>> entries;
  std::unordered_map<std::string, size_t> index;  // HashKey(key) -> entries index

  const Value* Find(const Value& key) const;
  const Value* Find(std::string_view key) const;
  // kInvalidArgument for an unhashable key.
  [[nodiscard]] Status Set(const Value& key, Value value);
  void Set(std::string_view key, Value value);
};

// Arguments of a call: f(a, b, k=v).
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keywords;
};

// Anything else a template can hold: namespaces, loops, macros, bound
// methods, builtins. Objects are shared and may be stateful.
class Object : public HeapData {
 public:
  // Python's type name, for messages ("'Namespace' object ...").
  virtual std::string_view type_name() const = 0;
  // obj.name; false if there is no such attribute.
  virtual bool GetAttr(std::string_view name, Value* out) const { return false; }
  virtual bool callable() const { return false; }
  // REQUIRES: callable().
  [[nodiscard]] virtual Status Call(Renderer& renderer, CallArgs& args, Value* out);
  // str(obj). depth bounds the recursion through nested values.
  [[nodiscard]] virtual Status Str(int depth, std::string* out) const;
};

// Python's type name of v ("str", "list", "NoneType", ...).
std::string TypeName(const Value& v);

// bool(v).
bool Truthy(const Value& v);

// The dict key v stands for, or nullopt if v is unhashable.
std::optional<std::string> HashKey(const Value& v);

// str(v) and repr(v). kResourceExhausted when nesting exceeds depth levels.
[[nodiscard]] Status ToStr(const Value& v, int depth, std::string* out);
[[nodiscard]] Status Repr(const Value& v, int depth, std::string* out);
// repr() of a float, as Python writes it ("1.0", "1e+16", "0.0001", "inf").
std::string FloatRepr(double f);

// v == w with Python's rules (1 == 1.0, [1] == [1.0], dicts order-free).
[[nodiscard]] Status Equals(const Value& v, const Value& w, int depth, bool* out);
// v < w (and so <=, >, >=): numbers, strings, lists and tuples of those;
// kInvalidArgument (Python's TypeError) for others.
[[nodiscard]] Status Less(const Value& v, const Value& w, int depth, bool* out);

}  // namespace strata::jinja
