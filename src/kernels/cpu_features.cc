// CPU feature detection: CPUID for what the core implements, XGETBV for what the
// OS saves on context switch, and (Linux) arch_prctl for AMX tile-data permission.
// STRATA_KERNEL_PATH=scalar|avx2|avx512|amx caps BestPath() for benchmarks.
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/isa_kernels.h"
#include "kernels/kernels.h"

namespace strata::kernels {
namespace {

struct CpuidRegs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs Cpuid(uint32_t leaf, uint32_t subleaf) {
  CpuidRegs r;
  if (__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx) == 0) return CpuidRegs{};
  return r;
}

bool Bit(uint32_t reg, int bit) { return (reg >> bit) & 1u; }

// XCR0: which register states the OS enabled. REQUIRES: OSXSAVE.
uint64_t Xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

// Linux keeps AMX tile data disabled per process until it is requested.
bool RequestAmxPermission() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

CpuFeatures Detect() {
  CpuFeatures f;
  const CpuidRegs l1 = Cpuid(1, 0);
  if (!Bit(l1.ecx, 27)) return f;  // no OSXSAVE: the OS manages no AVX state
  const uint64_t xcr0 = Xgetbv0();
  const bool os_avx = (xcr0 & 0x6) == 0x6;            // XMM | YMM
  const bool os_avx512 = os_avx && (xcr0 & 0xE0) == 0xE0;  // opmask | ZMM_Hi256 | Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;    // XTILECFG | XTILEDATA

  const CpuidRegs l7 = Cpuid(7, 0);
  const CpuidRegs l7s1 = Cpuid(7, 1);
  if (os_avx) {
    f.avx2 = Bit(l7.ebx, 5);
    f.fma = Bit(l1.ecx, 12);
    f.f16c = Bit(l1.ecx, 29);
  }
  if (os_avx512) {
    f.avx512f = Bit(l7.ebx, 16);
    f.avx512dq = Bit(l7.ebx, 17);
    f.avx512bw = Bit(l7.ebx, 30);
    f.avx512vl = Bit(l7.ebx, 31);
    f.avx512vnni = Bit(l7.ecx, 11);
    f.avx512bf16 = Bit(l7s1.eax, 5);
  }
  const bool amx_cpu = Bit(l7.edx, 24) && Bit(l7.edx, 25) && Bit(l7.edx, 22);
  if (os_amx && amx_cpu && RequestAmxPermission()) {
    f.amx_tile = true;
    f.amx_int8 = true;
    f.amx_bf16 = true;
  }
  return f;
}

bool CanRun(const CpuFeatures& f, Path p) {
  switch (p) {
    case Path::kScalar:
      return true;
    case Path::kAvx2:
      return f.avx2 && f.fma && f.f16c;
    case Path::kAvx512:
      return CanRun(f, Path::kAvx2) && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni;
    case Path::kAmx:
      return CanRun(f, Path::kAvx512) && f.amx_tile && f.amx_int8 && f.amx_bf16;
  }
  return false;
}

constexpr Path kAllPaths[] = {Path::kScalar, Path::kAvx2, Path::kAvx512, Path::kAmx};

Path ParsePathCap(const char* s) {
  if (s == nullptr) return Path::kAmx;
  const std::string_view v(s);
  for (Path p : kAllPaths)
    if (v == PathName(p)) return p;
  return Path::kAmx;  // unknown value: no cap
}

}  // namespace

const char* PathName(Path p) {
  switch (p) {
    case Path::kScalar: return "scalar";
    case Path::kAvx2: return "avx2";
    case Path::kAvx512: return "avx512";
    case Path::kAmx: return "amx";
  }
  return "unknown";
}

std::string CpuModelName() {
  std::string name;
  unsigned regs[12] = {};
  if (static_cast<unsigned>(__get_cpuid_max(0x80000000u, nullptr)) >= 0x80000004u) {
    for (unsigned i = 0; i < 3; ++i) __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
    name.assign(reinterpret_cast<const char*>(regs), sizeof regs);
    name.resize(name.find('\0') == std::string::npos ? name.size() : name.find('\0'));
  }
  const size_t b = name.find_first_not_of(' '), e = name.find_last_not_of(' ');
  name = b == std::string::npos ? "" : name.substr(b, e - b + 1);
  for (char& c : name)
    if (c == '\n' || c == '\t') c = ' ';
  return name.empty() ? "unknown" : name;
}

const CpuFeatures& DetectCpu() {
  static const CpuFeatures features = Detect();
  return features;
}

std::vector<Path> AvailablePaths() {
  std::vector<Path> paths;
  for (Path p : kAllPaths)
    if (CanRun(DetectCpu(), p)) paths.push_back(p);
  return paths;
}

Path BestPath() {
  static const Path best = [] {
    const Path cap = ParsePathCap(std::getenv("STRATA_KERNEL_PATH"));
    Path b = Path::kScalar;
    for (Path p : AvailablePaths())
      if (p <= cap) b = p;
    return b;
  }();
  return best;
}

namespace internal {

Path ClampToAvailable(Path requested) {
  static const Path most_capable = AvailablePaths().back();
  return std::min(requested, most_capable);
}

}  // namespace internal
}  // namespace strata::kernels
