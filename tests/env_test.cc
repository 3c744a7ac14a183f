#include "core/env.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <thread>

#include "test_util.h"

namespace strata {
namespace {

void ExerciseEnv(Env* env, const std::string& dir) {
  ASSERT_TRUE(env->CreateDirs(dir + "/a/b").ok());
  const std::string path = dir + "/a/b/file";
  ASSERT_TRUE(WriteFileAtomic(env, path, "hello").ok());
  EXPECT_TRUE(env->FileExists(path));
  EXPECT_TRUE(testing::TempFiles(env, dir + "/a/b").empty());
  std::string got;
  ASSERT_TRUE(env->ReadFile(path, UINT64_MAX, &got).ok());
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
  EXPECT_EQ(env->ReadFile(path, UINT64_MAX, &got).code(), StatusCode::kNotFound);
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
  ASSERT_TRUE(Env::Default()->ReadFile(path, UINT64_MAX, &got).ok());
  EXPECT_EQ(got, "old");
}

using ::testing::HasSubstr;

// Runs fn (an Env call on a special file) on another thread; a call that
// blocks (a FIFO opened for reading) fails the test after a generous 30 s,
// and is then unblocked by opening fifo for writing.
Status WithinTimeout(const std::function<Status()>& fn, const std::string& fifo) {
  std::packaged_task<Status()> task(fn);
  std::future<Status> result = task.get_future();
  std::thread t(std::move(task));
  if (result.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    ADD_FAILURE() << "the call blocked";
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
  }
  t.join();
  return result.get();
}

// Every way of opening a file for reading, as one function of the path.
std::vector<std::pair<std::string, std::function<Status(const std::string&)>>> Openers(Env* env) {
  return {
      {"MapFile", [env](const std::string& p) { std::unique_ptr<MappedFile> f; return env->MapFile(p, &f); }},
      {"NewRandomAccessFile",
       [env](const std::string& p) { std::unique_ptr<RandomAccessFile> f; return env->NewRandomAccessFile(p, &f); }},
      {"NewRandomRWFile",
       [env](const std::string& p) { std::unique_ptr<RandomRWFile> f; return env->NewRandomRWFile(p, &f); }},
      {"ReadFile", [env](const std::string& p) { std::string s; return env->ReadFile(p, UINT64_MAX, &s); }},
      {"LockFile", [env](const std::string& p) { std::unique_ptr<FileLock> l; return env->LockFile(p, &l); }},
      {"CheckRegularFile", [env](const std::string& p) { return env->CheckRegularFile(p); }},
  };
}

TEST(EnvTest, SpecialFilesAreRefusedByTypeUnopened) {
  Env* env = Env::Default();
  const std::string dir = testing::MakeTempDir();
  const std::string fifo = dir + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  for (const auto& [name, open] : Openers(env)) {
    SCOPED_TRACE(name);
    Status s = WithinTimeout([&, &open = open] { return open(fifo); }, fifo);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), fifo + ": is not a regular file (a FIFO)");
    if (name != "NewRandomRWFile" && name != "LockFile") {  // these two would open /dev/zero for writing
      s = open("/dev/zero");
      EXPECT_EQ(s.message(), "/dev/zero: is not a regular file (a character device)");
    }
    s = open(dir);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), dir + ": is a directory");
    if (name != "NewRandomRWFile" && name != "LockFile") {  // these two create a missing file
      s = open(dir + "/missing");
      EXPECT_EQ(s.code(), StatusCode::kNotFound);
      EXPECT_EQ(s.message(), dir + "/missing: no such file");
    }
  }
  // The lock and RW paths refuse a device by type too (checked without writing it).
  std::unique_ptr<FileLock> lock;
  EXPECT_THAT(env->LockFile("/dev/null", &lock).message(), HasSubstr("is not a regular file (a character device)"));
}

// Opening an unreadable file says so. chmod 000 does not stop root, so as
// root the check runs in a child process that has become user nobody.
TEST(EnvTest, UnreadableFileIsPermissionDenied) {
  const std::string dir = testing::MakeTempDir();
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  const std::string path = dir + "/secret";
  std::ofstream(path) << "x";
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::geteuid() == 0 && (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0)) _exit(2);
    std::string got;
    const Status s = Env::Default()->ReadFile(path, UINT64_MAX, &got);
    std::unique_ptr<MappedFile> map;
    const Status m = Env::Default()->MapFile(path, &map);
    _exit(s.message() == path + ": permission denied" && m.message() == path + ": permission denied" ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 2) << "could not drop privileges";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the message is not '" << path << ": permission denied'";
}

void ExerciseLimitsAndLocks(Env* env, const std::string& dir) {
  const std::string path = dir + "/f";
  ASSERT_TRUE(WriteFileAtomic(env, path, std::string(100, 'x')).ok());
  std::string got;
  EXPECT_TRUE(env->ReadFile(path, 100, &got).ok());
  const Status s = env->ReadFile(path, 99, &got);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr(path + ": too large"));

  // A lock is exclusive until released; removing its file while held is allowed,
  // and the next locker gets a new file.
  const std::string lock_path = dir + "/l.lock";
  std::unique_ptr<FileLock> a, b;
  ASSERT_TRUE(env->LockFile(lock_path, &a).ok());
  EXPECT_TRUE(env->FileExists(lock_path));
  EXPECT_EQ(env->LockFile(lock_path, &b).code(), StatusCode::kBusy);
  a.reset();
  ASSERT_TRUE(env->LockFile(lock_path, &b).ok());
  ASSERT_TRUE(env->RemoveFile(lock_path).ok());
  EXPECT_TRUE(env->LockFile(lock_path, &a).ok());
  a.reset();
  b.reset();

  // Temp files are unique per writer and locked while their writer lives,
  // even once closed; only then does RemoveStaleTempFiles take them.
  std::unique_ptr<WritableFile> t1, t2;
  std::string n1, n2;
  ASSERT_TRUE(env->NewTempFile(path, &t1, &n1).ok());
  ASSERT_TRUE(env->NewTempFile(path, &t2, &n2).ok());
  EXPECT_NE(n1, n2);
  EXPECT_EQ(n1.rfind(path + ".tmp.", 0), 0u) << n1;
  EXPECT_EQ(testing::TempFiles(env, dir).size(), 2u);
  ASSERT_TRUE(t1->Close().ok());
  RemoveStaleTempFiles(env, path);
  EXPECT_TRUE(env->FileExists(n1));
  EXPECT_TRUE(env->FileExists(n2));
  t1.reset();  // its writer is gone: stale
  RemoveStaleTempFiles(env, path);
  EXPECT_FALSE(env->FileExists(n1));
  EXPECT_TRUE(env->FileExists(n2));
  t2.reset();

  // Only names of exactly that pattern are touched.
  for (const char* other : {"/f.tmp", "/f.tmp.0123", "/f.tmp.0123456789abcdef.session", "/g.tmp.0123456789abcdef",
                            "/f.tmp.0123456789ABCDEF"})
    ASSERT_TRUE(WriteFileAtomic(env, dir + other, "keep").ok());
  ASSERT_TRUE(WriteFileAtomic(env, path, "new").ok());  // removes f's stale temps (n2) before writing
  EXPECT_FALSE(env->FileExists(n2));
  for (const char* other : {"/f.tmp", "/f.tmp.0123", "/f.tmp.0123456789abcdef.session", "/g.tmp.0123456789abcdef",
                            "/f.tmp.0123456789ABCDEF"})
    EXPECT_TRUE(env->FileExists(dir + other)) << other;
}

TEST(EnvTest, LimitsLocksAndTempFilesPosix) { ExerciseLimitsAndLocks(Env::Default(), testing::MakeTempDir()); }

TEST(EnvTest, LimitsLocksAndTempFilesMemory) {
  auto env = NewMemEnv();
  ExerciseLimitsAndLocks(env.get(), "/mem");
}

// Locks are between processes, and the OS releases a dead holder's.
TEST(EnvTest, LockIsHeldAgainstOtherProcessesUntilTheHolderDies) {
  const std::string path = testing::MakeTempDir() + "/s.lock";
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::unique_ptr<FileLock> lock;
    if (!Env::Default()->LockFile(path, &lock).ok()) _exit(1);
    (void)!::write(ready[1], "x", 1);
    ::pause();  // killed by the parent while holding the lock
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  std::unique_ptr<FileLock> lock;
  EXPECT_EQ(Env::Default()->LockFile(path, &lock).code(), StatusCode::kBusy);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  EXPECT_TRUE(Env::Default()->LockFile(path, &lock).ok());
  ::close(ready[0]);
  ::close(ready[1]);
}

// A writer killed before it committed leaves its temp file; the next atomic
// write of the same file removes it.
TEST(EnvTest, KilledWritersTempFileIsRemovedByTheNextWrite) {
  const std::string dir = testing::MakeTempDir();
  const std::string path = dir + "/f";
  ASSERT_TRUE(WriteFileAtomic(Env::Default(), path, "old").ok());
  const pid_t pid = ::fork();
  if (pid == 0) {
    AtomicFileWriter w(Env::Default(), path);
    if (w.Open().ok() && w.Append("half").ok()) ::kill(::getpid(), SIGKILL);
    _exit(1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_EQ(testing::TempFiles(Env::Default(), dir).size(), 1u);
  std::string got;
  ASSERT_TRUE(Env::Default()->ReadFile(path, UINT64_MAX, &got).ok());
  EXPECT_EQ(got, "old");
  ASSERT_TRUE(WriteFileAtomic(Env::Default(), path, "new").ok());
  EXPECT_TRUE(testing::TempFiles(Env::Default(), dir).empty());
}

// An atomic write never replaces a FIFO, device or directory with a file.
TEST(EnvTest, AtomicWriteRefusesToReplaceSpecialFiles) {
  const std::string dir = testing::MakeTempDir();
  const std::string fifo = dir + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  Status s = WriteFileAtomic(Env::Default(), fifo, "x");
  EXPECT_EQ(s.message(), fifo + ": is not a regular file (a FIFO); not replacing it");
  struct stat st {};
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(WriteFileAtomic(Env::Default(), dir, "x").code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(testing::TempFiles(Env::Default(), dir).empty());
}

// Standard input is read to its end, but not past the limit.
TEST(EnvTest, ReadStdinIsBounded) {
  for (const uint64_t limit : {uint64_t{1} << 20, uint64_t{1000}}) {
    int in[2];
    ASSERT_EQ(::pipe(in), 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(in[0], STDIN_FILENO);
      ::close(in[0]);
      ::close(in[1]);
      std::string got;
      const Status s = Env::Default()->ReadStdin(limit, &got);
      if (s.ok()) _exit(got.size() == 5000 ? 0 : 1);
      _exit(s.code() == StatusCode::kInvalidArgument && s.message().find("standard input: too large") == 0 ? 3 : 2);
    }
    ::close(in[0]);
    const std::string data(5000, 'a');
    ASSERT_EQ(::write(in[1], data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ::close(in[1]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_EQ(WEXITSTATUS(status), limit > 5000 ? 0 : 3) << "limit " << limit;
  }
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
