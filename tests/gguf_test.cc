// GGUF reader and writer: real files, crafted hostile files, round trips.
#include "format/gguf.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "format/gguf_writer.h"
#include "test_util.h"

namespace strata::gguf {
namespace {

using ::testing::HasSubstr;

// Builds GGUF bytes field by field, so tests can write any (broken) file.
class Bytes {
 public:
  Bytes& U8(uint8_t x) { return Raw(&x, 1); }
  Bytes& U32(uint32_t x) { return Raw(&x, 4); }
  Bytes& U64(uint64_t x) { return Raw(&x, 8); }
  Bytes& F32(float x) { return Raw(&x, 4); }
  Bytes& Str(std::string_view s) {
    U64(s.size());
    s_.append(s);
    return *this;
  }
  Bytes& Header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return U32(kMagic).U32(version).U64(n_tensors).U64(n_kv);
  }
  // A tensor info of a 1..4-dim tensor.
  Bytes& TensorInfo(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    Str(name).U32(static_cast<uint32_t>(ne.size()));
    for (uint64_t n : ne) U64(n);
    return U32(type).U64(offset);
  }
  Bytes& PadTo(size_t alignment) {
    s_.resize((s_.size() + alignment - 1) / alignment * alignment, '\0');
    return *this;
  }
  Bytes& Fill(size_t n, uint8_t byte) {
    s_.append(n, static_cast<char>(byte));
    return *this;
  }
  const std::string& str() const { return s_; }
  size_t size() const { return s_.size(); }

 private:
  Bytes& Raw(const void* p, size_t n) {
    s_.append(static_cast<const char*>(p), n);
    return *this;
  }
  std::string s_;
};

Status ParseBytes(const std::string& s, std::unique_ptr<GgufFile>* out) {
  return GgufFile::Parse(reinterpret_cast<const uint8_t*>(s.data()), s.size(), out);
}

Status ParseBytes(const std::string& s) {
  std::unique_ptr<GgufFile> f;
  return ParseBytes(s, &f);
}

// Two kv pairs, an F32 {4, 2} tensor at 0 (bytes 0x11) and an F16 {8} at 32 (0x22).
Bytes SmallValidFile() {
  Bytes b;
  b.Header(2, 2).Str("general.architecture").U32(8).Str("llama");
  b.Str("test.list").U32(9).U32(5).U64(3).U32(1).U32(2).U32(3);
  b.TensorInfo("w", {4, 2}, 0, 0).TensorInfo("v", {8}, 1, 32);
  b.PadTo(32).Fill(32, 0x11).Fill(16, 0x22);
  return b;
}

TEST(GgufTest, ParsesSmallValidFile) {
  const Bytes b = SmallValidFile();
  std::unique_ptr<GgufFile> f;
  ASSERT_TRUE(ParseBytes(b.str(), &f).ok());
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->file_size(), b.size());
  EXPECT_EQ(f->GetString("general.architecture"), "llama");
  EXPECT_EQ(f->GetIntArray("test.list"), (std::vector<int64_t>{1, 2, 3}));
  ASSERT_EQ(f->tensors().size(), 2u);
  const TensorInfo* w = f->FindTensor("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->n_dims, 2u);
  EXPECT_EQ(w->tensor.type, DType::kF32);
  EXPECT_EQ(w->tensor.ne, (std::array<int64_t, 4>{4, 2, 1, 1}));
  EXPECT_EQ(w->nbytes, 32u);
  EXPECT_EQ(static_cast<const uint8_t*>(w->tensor.data),
            reinterpret_cast<const uint8_t*>(b.str().data()) + f->data_offset());
  const TensorInfo* v = f->FindTensor("v");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->tensor.type, DType::kF16);
  EXPECT_EQ(v->nbytes, 16u);
  EXPECT_EQ(*static_cast<const uint8_t*>(v->tensor.data), 0x22);
  EXPECT_EQ(f->FindTensor("x"), nullptr);
  EXPECT_EQ(f->Find("missing"), nullptr);
}

TEST(GgufTest, AcceptsVersion2AndRejectsOthers) {
  Bytes v2;
  v2.Header(0, 0, 2);
  EXPECT_TRUE(ParseBytes(v2.str()).ok());
  for (uint32_t version : {0u, 1u, 4u, 0x03000000u}) {
    Bytes b;
    b.Header(0, 0, version);
    Status s = ParseBytes(b.str());
    EXPECT_EQ(s.code(), StatusCode::kUnsupported) << version << " " << s.ToString();
  }
}

TEST(GgufTest, RejectsWrongMagic) {
  std::string s = SmallValidFile().str();
  s[0] = 'X';
  Status st = ParseBytes(s);
  EXPECT_EQ(st.code(), StatusCode::kCorrupt);
  EXPECT_THAT(st.message(), HasSubstr("magic"));
}

TEST(GgufTest, EveryTruncationFails) {
  const std::string s = SmallValidFile().str();
  for (size_t n = 0; n < s.size(); ++n) {
    Status st = ParseBytes(s.substr(0, n));
    EXPECT_EQ(st.code(), StatusCode::kCorrupt) << "truncated to " << n << ": " << st.ToString();
  }
}

TEST(GgufTest, ZeroTensorFileMayEndBeforeDataOffset) {
  Bytes b;
  b.Header(0, 1).Str("k").U32(8).Str("value");  // 50 bytes; the data section would start at 64
  const std::string s = b.str();
  std::unique_ptr<GgufFile> f;
  ASSERT_TRUE(ParseBytes(s, &f).ok());
  EXPECT_EQ(f->data_offset(), 64u);
  EXPECT_GT(f->data_offset(), f->file_size());
  for (size_t n = 0; n < s.size(); ++n) {
    EXPECT_EQ(ParseBytes(s.substr(0, n)).code(), StatusCode::kCorrupt) << n;
  }
}

TEST(GgufTest, RejectsTensorDataPastEnd) {
  Bytes b;
  b.Header(1, 0).TensorInfo("w", {8}, 0, 0).PadTo(32).Fill(31, 0);
  Status s = ParseBytes(b.str());
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_THAT(s.message(), HasSubstr("'w'"));

  Bytes far;  // a huge offset must not overflow the range check
  far.Header(1, 0).TensorInfo("w", {8}, 0, ~uint64_t{0} - 31).PadTo(32).Fill(32, 0);
  EXPECT_EQ(ParseBytes(far.str()).code(), StatusCode::kCorrupt);
}

TEST(GgufTest, RejectsAbsurdCountsFast) {
  constexpr uint64_t kHuge = uint64_t{1} << 60;
  Bytes tensors;
  tensors.Header(kHuge, 0).Fill(64, 0);
  EXPECT_THAT(ParseBytes(tensors.str()).message(), HasSubstr("absurd tensor count"));
  Bytes kvs;
  kvs.Header(0, kHuge).Fill(64, 0);
  EXPECT_THAT(ParseBytes(kvs.str()).message(), HasSubstr("absurd metadata count"));
  Bytes array;
  array.Header(0, 1).Str("a").U32(9).U32(0).U64(kHuge).Fill(64, 0);
  EXPECT_THAT(ParseBytes(array.str()).message(), HasSubstr("absurd array length"));
  Bytes nested;  // an array of 2^60 empty arrays: each would be at least 12 bytes
  nested.Header(0, 1).Str("a").U32(9).U32(9).U64(kHuge).Fill(64, 0);
  EXPECT_THAT(ParseBytes(nested.str()).message(), HasSubstr("absurd array length"));
  Bytes key;
  key.Header(0, 1).U64(kHuge).Fill(64, 'a');
  EXPECT_THAT(ParseBytes(key.str()).message(), HasSubstr("absurd length"));
  Bytes value;
  value.Header(0, 1).Str("k").U32(8).U64(kHuge).Fill(64, 'a');
  EXPECT_EQ(ParseBytes(value.str()).code(), StatusCode::kCorrupt);
  for (const Bytes* b : {&tensors, &kvs, &array, &nested, &key, &value}) {
    EXPECT_EQ(ParseBytes(b->str()).code(), StatusCode::kCorrupt);
  }
}

TEST(GgufTest, CapsMetadataArrayElementsBeforeAllocating) {
  constexpr uint64_t kTooMany = (uint64_t{1} << 22) + 1;
  Bytes b;
  b.Header(0, 1).Str("a").U32(9).U32(0).U64(kTooMany).Fill(kTooMany, 0);
  Status s = ParseBytes(b.str());
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_THAT(s.message(), HasSubstr("array elements"));
}

TEST(GgufTest, RejectsBadDims) {
  for (uint32_t n_dims : {0u, 5u, 0xFFFFFFFFu}) {
    Bytes b;
    b.Header(1, 0).Str("w").U32(n_dims).Fill(64, 1);
    Status s = ParseBytes(b.str());
    EXPECT_EQ(s.code(), StatusCode::kCorrupt);
    EXPECT_THAT(s.message(), HasSubstr("n_dims"));
  }
  Bytes zero;
  zero.Header(1, 0).TensorInfo("w", {4, 0}, 0, 0).PadTo(32).Fill(64, 0);
  EXPECT_THAT(ParseBytes(zero.str()).message(), HasSubstr("ne[1] = 0"));
  Bytes overflow;
  overflow.Header(1, 0).TensorInfo("w", {uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0).PadTo(32).Fill(64, 0);
  EXPECT_THAT(ParseBytes(overflow.str()).message(), HasSubstr("overflows"));
  Bytes bytes_overflow;  // 2^62 elements fit int64, but not as f32 bytes
  bytes_overflow.Header(1, 0).TensorInfo("w", {uint64_t{1} << 31, uint64_t{1} << 31}, 0, 0).PadTo(32).Fill(64, 0);
  EXPECT_EQ(ParseBytes(bytes_overflow.str()).code(), StatusCode::kCorrupt);
  Bytes huge;  // no overflow, but far past the end of the file
  huge.Header(1, 0).TensorInfo("w", {uint64_t{1} << 20, uint64_t{1} << 20}, 0, 0).PadTo(32).Fill(64, 0);
  EXPECT_THAT(ParseBytes(huge.str()).message(), HasSubstr("past the end"));
  Bytes partial_block;
  partial_block.Header(1, 0).TensorInfo("q", {16}, 8, 0).PadTo(32).Fill(64, 0);
  EXPECT_THAT(ParseBytes(partial_block.str()).message(), HasSubstr("block size"));
}

TEST(GgufTest, UnknownTensorTypeIsUnsupportedAndNamed) {
  Bytes b;
  b.Header(1, 0).TensorInfo("blk.0.attn_q.weight", {32}, 37, 0).PadTo(32).Fill(256, 0);
  Status s = ParseBytes(b.str());
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_THAT(s.message(), HasSubstr("tensor 'blk.0.attn_q.weight' has unknown type 37"));
}

TEST(GgufTest, KnownButUnsupportedTypesParse) {
  Bytes b;  // q4_K: 256 weights per 144-byte block
  b.Header(1, 0).TensorInfo("k", {256, 2}, 12, 0).PadTo(32).Fill(288, 0);
  std::unique_ptr<GgufFile> f;
  ASSERT_TRUE(ParseBytes(b.str(), &f).ok());
  EXPECT_EQ(f->tensors()[0].tensor.type, DType::kQ4_K);
  EXPECT_EQ(f->tensors()[0].nbytes, 288u);
}

TEST(GgufTest, RejectsMisalignedOffset) {
  Bytes b;
  b.Header(1, 0).TensorInfo("w", {1}, 0, 4).PadTo(32).Fill(64, 0);
  Status s = ParseBytes(b.str());
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_THAT(s.message(), HasSubstr("not a multiple of the alignment"));
}

TEST(GgufTest, HonoursAndValidatesAlignment) {
  Bytes good;
  good.Header(1, 1).Str("general.alignment").U32(4).U32(64).TensorInfo("w", {1}, 0, 64).PadTo(64).Fill(68, 0);
  std::unique_ptr<GgufFile> f;
  ASSERT_TRUE(ParseBytes(good.str(), &f).ok());
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  for (uint32_t a : {0u, 3u, 48u}) {
    Bytes b;
    b.Header(0, 1).Str("general.alignment").U32(4).U32(a);
    EXPECT_THAT(ParseBytes(b.str()).message(), HasSubstr("power of two")) << a;
  }
  Bytes wrong_type;
  wrong_type.Header(0, 1).Str("general.alignment").U32(10).U64(32);
  EXPECT_EQ(ParseBytes(wrong_type.str()).code(), StatusCode::kCorrupt);
}

TEST(GgufTest, RejectsDuplicates) {
  Bytes keys;
  keys.Header(0, 2).Str("k").U32(4).U32(1).Str("k").U32(4).U32(2);
  EXPECT_THAT(ParseBytes(keys.str()).message(), HasSubstr("duplicate metadata key 'k'"));
  Bytes names;
  names.Header(2, 0).TensorInfo("w", {8}, 0, 0).TensorInfo("w", {8}, 0, 32).PadTo(32).Fill(64, 0);
  EXPECT_THAT(ParseBytes(names.str()).message(), HasSubstr("duplicate tensor name 'w'"));
}

TEST(GgufTest, RejectsBadValues) {
  Bytes type;
  type.Header(0, 1).Str("k").U32(13).U32(0);
  EXPECT_THAT(ParseBytes(type.str()).message(), HasSubstr("unknown value type 13"));
  Bytes elem;
  elem.Header(0, 1).Str("k").U32(9).U32(99).U64(0);
  EXPECT_THAT(ParseBytes(elem.str()).message(), HasSubstr("unknown array element type 99"));
  Bytes boolean;
  boolean.Header(0, 1).Str("k").U32(7).U8(2);
  EXPECT_EQ(ParseBytes(boolean.str()).code(), StatusCode::kCorrupt);
  Bytes utf8;
  utf8.Header(0, 1).Str("bad\xC3(").U32(4).U32(0);
  EXPECT_THAT(ParseBytes(utf8.str()).message(), HasSubstr("UTF-8"));
  Bytes name;
  name.Header(1, 0).TensorInfo("\xFF", {1}, 0, 0).PadTo(32).Fill(32, 0);
  EXPECT_THAT(ParseBytes(name.str()).message(), HasSubstr("UTF-8"));
}

TEST(GgufTest, LimitsArrayNesting) {
  auto nested = [](int depth) {
    Bytes b;
    b.Header(0, 1).Str("k").U32(9);
    for (int d = 1; d < depth; ++d) b.U32(9).U64(1);
    return b.U32(4).U64(1).U32(7);
  };
  std::unique_ptr<GgufFile> f;
  ASSERT_TRUE(ParseBytes(nested(8).str(), &f).ok());
  const Value* v = f->Find("k");
  for (int d = 1; d < 8; ++d) v = &v->arr.at(0);
  EXPECT_EQ(v->arr.at(0).u, 7u);
  EXPECT_THAT(ParseBytes(nested(9).str()).message(), HasSubstr("nested deeper"));
  EXPECT_EQ(ParseBytes(nested(100000).str()).code(), StatusCode::kCorrupt);
}

TEST(GgufTest, AccessorsConvertOnlyWhereLossless) {
  Bytes b;
  b.Header(0, 6);
  b.Str("u").U32(10).U64(~uint64_t{0});
  b.Str("f").U32(6).F32(1.5f);
  b.Str("b").U32(7).U8(1);
  b.Str("ints").U32(9).U32(1).U64(2).U8(0xFF).U8(3);  // i8
  b.Str("floats").U32(9).U32(6).U64(1).F32(0.25f);
  b.Str("strs").U32(9).U32(8).U64(2).Str("a").Str("");
  std::unique_ptr<GgufFile> f;
  ASSERT_TRUE(ParseBytes(b.str(), &f).ok());
  EXPECT_EQ(f->GetInt("u"), std::nullopt);  // out of int64 range
  EXPECT_EQ(f->GetFloat("u"), 18446744073709551615.0);
  EXPECT_EQ(f->GetInt("f"), std::nullopt);
  EXPECT_EQ(f->GetFloat("f"), 1.5);
  EXPECT_EQ(f->GetBool("b"), true);
  EXPECT_EQ(f->GetBool("f"), std::nullopt);
  EXPECT_EQ(f->GetString("b"), std::nullopt);
  EXPECT_EQ(f->GetIntArray("ints"), (std::vector<int64_t>{-1, 3}));
  EXPECT_EQ(f->GetFloatArray("ints"), (std::vector<float>{-1, 3}));
  EXPECT_EQ(f->GetIntArray("floats"), std::nullopt);
  EXPECT_EQ(f->GetFloatArray("floats"), (std::vector<float>{0.25f}));
  EXPECT_EQ(f->GetStringArray("strs"), (std::vector<std::string>{"a", ""}));
  EXPECT_EQ(f->GetStringArray("ints"), std::nullopt);
  EXPECT_EQ(f->GetInt("missing"), std::nullopt);
}

TEST(GgufTest, ParsesStories260K) {
  std::unique_ptr<GgufFile> f;
  ASSERT_TRUE(GgufFile::Open(Env::Default(), testing::SharedPath("models/stories260K.gguf"), &f).ok());
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->GetString("general.architecture"), "llama");
  EXPECT_EQ(f->GetInt("llama.embedding_length"), 64);
  EXPECT_EQ(f->GetInt("llama.block_count"), 5);
  EXPECT_EQ(f->GetInt("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(f->GetStringArray("tokenizer.ggml.tokens")->size(), 512u);
  EXPECT_EQ(f->tensors().size(), 48u);
  const TensorInfo* emb = f->FindTensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->tensor.ne, (std::array<int64_t, 4>{64, 512, 1, 1}));
  const TensorInfo* down = f->FindTensor("blk.4.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->tensor.ne, (std::array<int64_t, 4>{172, 64, 1, 1}));
  for (const TensorInfo& t : f->tensors()) EXPECT_EQ(t.tensor.type, DType::kF32) << t.name;
}

TEST(GgufTest, ParsesEverySharedVocabFile) {
  std::vector<std::string> names;
  ASSERT_TRUE(Env::Default()->ListDir(testing::SharedPath("vocab"), &names).ok());
  int parsed = 0;
  for (const std::string& name : names) {
    if (!name.ends_with(".gguf")) continue;
    std::unique_ptr<GgufFile> f;
    Status s = GgufFile::Open(Env::Default(), testing::SharedPath("vocab/" + name), &f);
    ASSERT_TRUE(s.ok()) << name << ": " << s.ToString();
    EXPECT_TRUE(f->tensors().empty()) << name;
    EXPECT_TRUE(f->GetStringArray("tokenizer.ggml.tokens").has_value()) << name;
    ++parsed;
  }
  EXPECT_EQ(parsed, 10);
}

TEST(GgufTest, OpenReportsMissingFileAndNamesPathOnCorruption) {
  std::unique_ptr<Env> env = NewMemEnv();
  std::unique_ptr<GgufFile> f;
  EXPECT_EQ(GgufFile::Open(env.get(), "/m.gguf", &f).code(), StatusCode::kNotFound);
  ASSERT_TRUE(WriteFileAtomic(env.get(), "/m.gguf", "GGUF").ok());
  Status s = GgufFile::Open(env.get(), "/m.gguf", &f);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_THAT(s.message(), HasSubstr("/m.gguf: file truncated"));
}

// ---- writer ----

Value Scalar(ValueType t) {
  Value v;
  v.type = t;
  return v;
}

Value Array(ValueType elem, std::vector<Value> xs) {
  Value v = Scalar(ValueType::kArray);
  v.elem_type = elem;
  v.arr = std::move(xs);
  return v;
}

void ExpectSameValue(const Value& a, const Value& b, const std::string& where) {
  ASSERT_EQ(a.type, b.type) << where;
  switch (a.type) {
    case ValueType::kUint8: case ValueType::kUint16: case ValueType::kUint32: case ValueType::kUint64:
      EXPECT_EQ(a.u, b.u) << where;
      break;
    case ValueType::kInt8: case ValueType::kInt16: case ValueType::kInt32: case ValueType::kInt64:
      EXPECT_EQ(a.i, b.i) << where;
      break;
    case ValueType::kFloat32: case ValueType::kFloat64: EXPECT_EQ(a.f, b.f) << where; break;
    case ValueType::kBool: EXPECT_EQ(a.b, b.b) << where; break;
    case ValueType::kString: EXPECT_EQ(a.str, b.str) << where; break;
    case ValueType::kArray:
      EXPECT_EQ(a.elem_type, b.elem_type) << where;
      ASSERT_EQ(a.arr.size(), b.arr.size()) << where;
      for (size_t k = 0; k < a.arr.size(); ++k) ExpectSameValue(a.arr[k], b.arr[k], where + "[" + std::to_string(k) + "]");
      break;
  }
}

// One value of every type, at the extremes of its range.
std::vector<KeyValue> EveryValueType() {
  std::vector<KeyValue> kvs;
  auto u = [](ValueType t, uint64_t x) { Value v = Scalar(t); v.u = x; return v; };
  auto i = [](ValueType t, int64_t x) { Value v = Scalar(t); v.i = x; return v; };
  auto f = [](ValueType t, double x) { Value v = Scalar(t); v.f = x; return v; };
  Value str = Scalar(ValueType::kString);
  str.str = std::string("h\xC3\xA9llo\0world", 12);
  Value yes = Scalar(ValueType::kBool);
  yes.b = true;
  kvs.push_back({"t.u8", u(ValueType::kUint8, 255)});
  kvs.push_back({"t.i8", i(ValueType::kInt8, -128)});
  kvs.push_back({"t.u16", u(ValueType::kUint16, 65535)});
  kvs.push_back({"t.i16", i(ValueType::kInt16, -32768)});
  kvs.push_back({"t.u32", u(ValueType::kUint32, 4294967295u)});
  kvs.push_back({"t.i32", i(ValueType::kInt32, -2147483647 - 1)});
  kvs.push_back({"t.f32", f(ValueType::kFloat32, -0.1f)});
  kvs.push_back({"t.bool", yes});
  kvs.push_back({"t.str", str});
  kvs.push_back({"t.u64", u(ValueType::kUint64, ~uint64_t{0})});
  kvs.push_back({"t.i64", i(ValueType::kInt64, INT64_MIN)});
  kvs.push_back({"t.f64", f(ValueType::kFloat64, 1e300)});
  kvs.push_back({"t.empty", Array(ValueType::kFloat64, {})});
  kvs.push_back({"t.strs", Array(ValueType::kString, {str, Scalar(ValueType::kString), str})});
  kvs.push_back({"t.nested", Array(ValueType::kArray, {Array(ValueType::kInt16, {i(ValueType::kInt16, -5)}),
                                                       Array(ValueType::kBool, {yes, Scalar(ValueType::kBool)}),
                                                       Array(ValueType::kArray, {Array(ValueType::kString, {str})})})});
  return kvs;
}

std::string Pattern(size_t n, uint8_t seed) {
  std::string s(n, '\0');
  for (size_t k = 0; k < n; ++k) s[k] = static_cast<char>(seed + k * 7);
  return s;
}

struct TensorSpec {
  std::string name;
  DType type;
  std::vector<int64_t> ne;
  size_t nbytes;
};

std::vector<TensorSpec> EveryDTypeTensors() {
  return {{"f32", DType::kF32, {3, 5}, 60},      {"f16", DType::kF16, {7}, 14},
          {"bf16", DType::kBF16, {2, 2, 2}, 16}, {"q8_0", DType::kQ8_0, {64, 3}, 6 * 34},
          {"q4_0", DType::kQ4_0, {32, 1, 2, 3}, 6 * 18}, {"q4_K", DType::kQ4_K, {256}, 144}};
}

TEST(GgufWriterTest, RoundTripsEveryValueTypeAndTensorType) {
  for (uint32_t alignment : {32u, 64u, 1u}) {
    std::unique_ptr<Env> env = NewMemEnv();
    GgufWriter w(alignment);
    const std::vector<KeyValue> kvs = EveryValueType();
    for (const KeyValue& kv : kvs) w.SetValue(kv.key, kv.value);
    const std::vector<TensorSpec> specs = EveryDTypeTensors();
    std::vector<std::string> data;
    for (const TensorSpec& t : specs) data.push_back(Pattern(t.nbytes, static_cast<uint8_t>(data.size())));
    for (size_t k = 0; k < specs.size(); ++k) {
      ASSERT_TRUE(w.AddTensor(specs[k].name, specs[k].type, specs[k].ne, data[k].data()).ok());
    }
    std::vector<std::pair<uint64_t, uint64_t>> progress;
    ASSERT_TRUE(w.Write(env.get(), "/out.gguf", [&](uint64_t d, uint64_t t) { progress.emplace_back(d, t); }).ok());
    EXPECT_TRUE(testing::TempFiles(env.get(), "/").empty());
    ASSERT_EQ(progress.size(), specs.size());
    EXPECT_EQ(progress.back().first, progress.back().second);

    std::unique_ptr<GgufFile> f;
    Status s = GgufFile::Open(env.get(), "/out.gguf", &f);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(f->alignment(), alignment);
    EXPECT_EQ(f->Find("general.alignment") != nullptr, alignment != kDefaultAlignment);
    EXPECT_EQ(f->metadata().size(), kvs.size() + (alignment != kDefaultAlignment ? 1 : 0));
    for (const KeyValue& kv : kvs) {
      const Value* v = f->Find(kv.key);
      ASSERT_NE(v, nullptr) << kv.key;
      ExpectSameValue(kv.value, *v, kv.key);
    }
    ASSERT_EQ(f->tensors().size(), specs.size());
    for (size_t k = 0; k < specs.size(); ++k) {
      const TensorInfo& t = f->tensors()[k];
      EXPECT_EQ(t.name, specs[k].name);
      EXPECT_EQ(t.tensor.type, specs[k].type);
      EXPECT_EQ(t.n_dims, specs[k].ne.size());
      for (size_t d = 0; d < 4; ++d) EXPECT_EQ(t.tensor.ne[d], d < specs[k].ne.size() ? specs[k].ne[d] : 1);
      EXPECT_EQ(t.offset % alignment, 0u);
      ASSERT_EQ(t.nbytes, specs[k].nbytes);
      EXPECT_EQ(std::memcmp(t.tensor.data, data[k].data(), t.nbytes), 0) << t.name;
    }
  }
}

TEST(GgufWriterTest, ConvenienceSettersAndReplacement) {
  std::unique_ptr<Env> env = NewMemEnv();
  GgufWriter w;
  w.SetString("a.str", "first");
  w.SetString("a.str", "second");
  w.SetU32("a.u32", 7);
  w.SetI32("a.i32", -7);
  w.SetU64("a.u64", uint64_t{1} << 40);
  w.SetF32("a.f32", 0.5f);
  w.SetBool("a.bool", false);
  w.SetStringArray("a.strs", {"x", "y"});
  w.SetF32Array("a.f32s", {1.0f, -2.5f});
  w.SetI32Array("a.i32s", {-1, 2});
  ASSERT_TRUE(w.Write(env.get(), "/o.gguf").ok());
  std::unique_ptr<GgufFile> f;
  ASSERT_TRUE(GgufFile::Open(env.get(), "/o.gguf", &f).ok());
  EXPECT_EQ(f->metadata().size(), 9u);
  EXPECT_EQ(f->GetString("a.str"), "second");
  EXPECT_EQ(f->Find("a.u32")->type, ValueType::kUint32);
  EXPECT_EQ(f->GetInt("a.u32"), 7);
  EXPECT_EQ(f->Find("a.i32")->type, ValueType::kInt32);
  EXPECT_EQ(f->GetInt("a.i32"), -7);
  EXPECT_EQ(f->GetInt("a.u64"), int64_t{1} << 40);
  EXPECT_EQ(f->GetFloat("a.f32"), 0.5);
  EXPECT_EQ(f->GetBool("a.bool"), false);
  EXPECT_EQ(f->GetStringArray("a.strs"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(f->GetFloatArray("a.f32s"), (std::vector<float>{1.0f, -2.5f}));
  EXPECT_EQ(f->Find("a.i32s")->elem_type, ValueType::kInt32);
  EXPECT_EQ(f->GetIntArray("a.i32s"), (std::vector<int64_t>{-1, 2}));
  EXPECT_TRUE(f->tensors().empty());
}

TEST(GgufWriterTest, RejectsBadTensors) {
  GgufWriter w;
  float x[32] = {};
  ASSERT_TRUE(w.AddTensor("a", DType::kF32, {32}, x).ok());
  EXPECT_EQ(w.AddTensor("a", DType::kF32, {32}, x).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensor("b", DType::kQ8_0, {16}, x).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensor("c", DType::kF32, {}, x).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensor("d", DType::kF32, {1, 1, 1, 1, 1}, x).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensor("e", DType::kF32, {4, 0}, x).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensor("f", DType::kF32, {int64_t{1} << 62, 4}, x).code(), StatusCode::kInvalidArgument);
}

TEST(GgufWriterTest, RejectsBadMetadataAndAlignment) {
  std::unique_ptr<Env> env = NewMemEnv();
  GgufWriter mixed;
  mixed.SetValue("k", Array(ValueType::kString, {Scalar(ValueType::kInt32)}));
  EXPECT_EQ(mixed.Write(env.get(), "/a.gguf").code(), StatusCode::kInvalidArgument);
  GgufWriter conflict(64);
  conflict.SetU32("general.alignment", 32);
  EXPECT_EQ(conflict.Write(env.get(), "/b.gguf").code(), StatusCode::kInvalidArgument);
  GgufWriter agree(64);
  agree.SetU32("general.alignment", 64);
  EXPECT_TRUE(agree.Write(env.get(), "/c.gguf").ok());
  GgufWriter odd(48);
  EXPECT_EQ(odd.Write(env.get(), "/d.gguf").code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(env->FileExists("/a.gguf"));
  EXPECT_TRUE(testing::TempFiles(env.get(), "/").empty());
}

TEST(GgufWriterTest, ProducerFailureLeavesDestinationUntouched) {
  std::unique_ptr<Env> env = NewMemEnv();
  ASSERT_TRUE(WriteFileAtomic(env.get(), "/m.gguf", "old").ok());
  GgufWriter w;
  std::vector<uint64_t> sizes;
  ASSERT_TRUE(w.AddTensor("ok", DType::kF32, {8}, [&](uint8_t* dst, uint64_t n) {
                 sizes.push_back(n);
                 std::memset(dst, 0, n);
                 return Status::Ok();
               }).ok());
  ASSERT_TRUE(w.AddTensor("bad", DType::kF16, {4}, [&](uint8_t*, uint64_t n) {
                 sizes.push_back(n);
                 return Status::ResourceExhausted("out of quants");
               }).ok());
  Status s = w.Write(env.get(), "/m.gguf");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("tensor 'bad'"));
  EXPECT_EQ(sizes, (std::vector<uint64_t>{32, 8}));
  std::string content;
  ASSERT_TRUE(env->ReadFile("/m.gguf", UINT64_MAX, &content).ok());
  EXPECT_EQ(content, "old");
  EXPECT_TRUE(testing::TempFiles(env.get(), "/").empty());
}

TEST(GgufWriterTest, WritesRealFilesThroughPosixEnv) {
  const std::string path = testing::MakeTempDir() + "/model.gguf";
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  std::vector<uint16_t> halves = {F32ToFp16(1.0f), F32ToFp16(-2.0f)};
  ASSERT_TRUE(w.AddTensor("h", DType::kF16, {2}, halves.data()).ok());
  ASSERT_TRUE(w.Write(Env::Default(), path).ok());
  std::unique_ptr<GgufFile> f;
  ASSERT_TRUE(GgufFile::Open(Env::Default(), path, &f).ok());
  const auto* h = static_cast<const uint16_t*>(f->FindTensor("h")->tensor.data);
  EXPECT_EQ(Fp16ToF32(h[0]), 1.0f);
  EXPECT_EQ(Fp16ToF32(h[1]), -2.0f);
  EXPECT_TRUE(testing::TempFiles(Env::Default(), DirName(path)).empty());
  EXPECT_TRUE(Env::Default()->RemoveFile(path).ok());
}

}  // namespace
}  // namespace strata::gguf
