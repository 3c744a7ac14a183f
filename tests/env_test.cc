#include "core/env.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace strata {
namespace {

void ExerciseEnv(Env* env, const std::string& dir) {
  ASSERT_TRUE(env->CreateDirs(dir + "/a/b").ok());
  const std::string path = dir + "/a/b/file";
  ASSERT_TRUE(WriteFileAtomic(env, path, "hello").ok());
  EXPECT_TRUE(env->FileExists(path));
  EXPECT_FALSE(env->FileExists(path + ".tmp"));
  std::string got;
  ASSERT_TRUE(env->ReadFile(path, &got).ok());
  EXPECT_EQ(got, "hello");
  ASSERT_TRUE(WriteFileAtomic(env, path, "replaced").ok());
  std::unique_ptr<MappedFile> map;
  ASSERT_TRUE(env->MapFile(path, &map).ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(map->data()), map->size()), "replaced");
  // Paging hints (unaligned ranges) leave the contents readable.
  map->WillNeed(map->data() + 1, 5);
  map->ReleasePages(map->data() + 1, 5);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(map->data()), map->size()), "replaced");
  std::unique_ptr<RandomAccessFile> raf;
  ASSERT_TRUE(env->NewRandomAccessFile(path, &raf).ok());
  char buf[4];
  ASSERT_TRUE(raf->Read(2, 4, buf).ok());
  EXPECT_EQ(std::string(buf, 4), "plac");
  EXPECT_FALSE(raf->Read(6, 4, buf).ok());  // short read is an error
  uint64_t size = 0;
  ASSERT_TRUE(env->FileSize(path, &size).ok());
  EXPECT_EQ(size, 8u);
  std::vector<std::string> names;
  ASSERT_TRUE(env->ListDir(dir + "/a/b", &names).ok());
  EXPECT_EQ(names, std::vector<std::string>{"file"});
  ASSERT_TRUE(env->RemoveFile(path).ok());
  EXPECT_FALSE(env->FileExists(path));
  EXPECT_EQ(env->ReadFile(path, &got).code(), StatusCode::kNotFound);
  EXPECT_EQ(env->MapFile(path, &map).code(), StatusCode::kNotFound);
}

TEST(EnvTest, Posix) { ExerciseEnv(Env::Default(), testing::MakeTempDir()); }

TEST(EnvTest, Memory) {
  auto env = NewMemEnv();
  ExerciseEnv(env.get(), "/mem");
}

TEST(EnvTest, AtomicWriteFailureKeepsOldContent) {
  const std::string dir = testing::MakeTempDir();
  const std::string path = dir + "/f";
  ASSERT_TRUE(WriteFileAtomic(Env::Default(), path, "old").ok());
  // The temp file cannot be created inside a missing directory: the write fails, the old file stays.
  EXPECT_FALSE(WriteFileAtomic(Env::Default(), dir + "/missing/f", "new").ok());
  std::string got;
  ASSERT_TRUE(Env::Default()->ReadFile(path, &got).ok());
  EXPECT_EQ(got, "old");
}

TEST(StatusTest, CodesAndContext) {
  Status s = Status::Corrupt("bad magic");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.ToString(), "corrupt: bad magic");
  EXPECT_EQ(s.WithContext("model.gguf").message(), "model.gguf: bad magic");
  EXPECT_TRUE(Status::Ok().WithContext("x").ok());
}

}  // namespace
}  // namespace strata
