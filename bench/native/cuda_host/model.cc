// A host model of the Hopper features kiln's *_sm90.cu kernels use, for running the kernels' own
// source on the CPU (scripts/build-cuda-host.sh compiles them with g++ against cuda_shim/ and
// sm90_host_model.h). Every CUDA thread of a block is a fiber (ucontext) of one OS thread; a fiber
// runs until it blocks (a barrier, a shuffle, an mbarrier wait, a warpgroup collective), then the
// scheduler resumes another whose wait is satisfied, in round-robin order perturbed by a seeded RNG.
// A thread about to commit or wait for wgmma products, arrive on a barrier or fence is now and then
// stalled (1 in 256) until no other thread can run: a slow warp, whose products stay in flight and
// whose stage stays unreleased while the rest of the block runs ahead as far as it can.
//
// What is modelled, and checked (a check that fails stops the launch with cudaErrorLaunchFailure and
// a message in failures()):
// - mbarriers: init count, arrivals, expect_tx / complete_tx byte counts, phases and parity waits
//   (a fresh barrier passes parity 1); arrivals past the count, bytes delivered to a phase that
//   expects none (stricter than PTX, whose tx-count may go negative; the kernels never need that),
//   waits on an uninitialised barrier.
// - TMA tile loads (cp.async.bulk.tensor 3-d, 128-byte swizzle): asynchronous, completed at random
//   later points in any order; element (x, y) of a box lands at swz(dst + 128 y + 2 x),
//   swz(a) = a ^ (((a >> 7) & 7) << 4); elements outside the tensor are zero. Checked: a map the
//   driver encoded, a 1 KiB-aligned destination inside the allocation, no box wholly outside the tensor.
// - wgmma.mma_async m64nNk16 (float32 accumulators; A and B through shared-memory descriptors or A
//   from registers), commit_group and wait_group: a product is computed when a wait retires its group,
//   from the operands as they are then; the operands are also captured when the last thread of the
//   warpgroup issues it, and any difference (shared memory or A registers changed while in flight) is
//   an error. The accumulators read NaN while in flight (a read before the wait shows in the
//   results); writing them in flight is an error. Descriptor fields must not carry into reserved
//   bits; every thread of the warpgroup must issue the same products in the same groups.
//   Layouts (PTX ISA; the same facts as bench/native/sm90_attention_emulate.py):
//     K-major operand row i, k j at swz(start + (i / 8) SBO + (i % 8) 128 + 2 j);
//     MN-major operand (m|n i, k j) at swz(start + (i / 64) LBO + (j / 8) SBO + (j % 8) 128 + 2 (i % 64));
//     accumulator: thread 32 w + l holds d[4 i + 2 h + e] = row 16 w + l / 4 + 8 h, column 8 i + 2 (l % 4) + e;
//     A in registers: register r, half e of thread 32 w + l = row 16 w + l / 4 + 8 (r % 2), k 2 (l % 4) + 8 (r / 2) + e.
// - The generic and the async proxy: wgmma reads shared memory as the async proxy sees it — bytes
//   the TMA unit wrote, and generic stores once a fence.proxy.async has published them (any
//   thread's fence publishes every generic store made before it: a missing or misplaced fence is
//   caught, a fence in the wrong thread is not). When a product is issued, its operand bytes must be
//   the same in both views (no generic store left unpublished), and when it retires they must still
//   be what it was issued with in both (no store, copy or publication in flight).
// - wgmma.fence: a thread must execute one before its first wgmma and again after each wait_group
//   before the next (stricter than PTX, which asks for it only when the registers the product uses
//   were touched in between, but also weaker: a register written after the fence is not seen).
// - setmaxnreg: the block starts with the launch's registers, 65536 / threads per thread rounded
//   down to 8 (168 for 384 threads: what ptxas gives these kernels under __launch_bounds__);
//   .dec returns registers to the block's pool, .inc waits until the pool has them.
// - sm_80 instructions (attention_fa2.cu): mma.sync m16n8k16 and ldmatrix x4 (.trans) as warp
//   collectives on the documented fragment layouts (A: a0 = (g, 2t..2t+1), a1 = (g+8, 2t..),
//   a2 = (g, 2t+8..), a3 = (g+8, 2t+8..); B: b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g); C: c0, c1 =
//   (g, 2t..2t+1), c2, c3 = (g+8, ..); g = lane / 4, t = lane % 4; ldmatrix: lanes 8i..8i+7 address
//   matrix i's rows, lane l receives its (row l / 4, cols 2 (l % 4)..+1), .trans (rows 2 (l % 4)..+1,
//   col l / 4)); cp.async copies completed at random later points, a thread's committed ones all at
//   its wait_group 0 (16-byte aligned rows inside the allocation checked).
// - __syncthreads, named barriers (bar.sync id, count), __syncwarp, shuffles (full masks only),
//   deadlocks (every fiber waiting, no copy in flight: the waits are listed).
// - Shared memory starts as 0xFF bytes (NaN in every float type) and ends at a guard page; the
//   dynamic allocation's shared address is a parameter (the kernels align it up to 1 KiB).
// Not modelled: timing, several blocks at a time (blocks run one after another), the register file
// (local arrays).
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "kiln_host_cuda.h"
#include "model.h"
#include "sm90_host_model.h"

namespace kiln_host {
namespace {

// ------------------------------------------------------------------ errors and device attributes

cudaError_t g_error = cudaSuccess;
std::vector<std::string> g_failures;
Options g_opt;
Stats g_stats;
std::map<const void*, int> g_smemLimit;

// ------------------------------------------------------------------ tensor maps

constexpr uint32_t kMapMagic = 0x6b696c6e;  // "kiln"
struct TensorMap {
  uint32_t magic;
  int elemBytes;
  const unsigned char* base;
  uint64_t dims[3];
  uint64_t strides[2];  // bytes, dimensions 1 and 2
  uint32_t box[3];
};
static_assert(sizeof(TensorMap) <= sizeof(CUtensorMap), "a tensor map fits the opaque 128 bytes");

// cuTensorMapEncodeTiled's documented argument rules, for the case the kernels use (3-d, no
// interleave, 128-byte swizzle, unit element strides).
CUresult encode_tiled(CUtensorMap* m, CUtensorMapDataType type, cuuint32_t rank, void* addr, const cuuint64_t* dims,
                      const cuuint64_t* strides, const cuuint32_t* box, const cuuint32_t* es, CUtensorMapInterleave il,
                      CUtensorMapSwizzle sw, CUtensorMapL2promotion, CUtensorMapFloatOOBfill) {
  auto bad = [](const char* why) {
    g_failures.push_back(std::string("cuTensorMapEncodeTiled refuses the map: ") + why);
    return CUDA_ERROR_INVALID_VALUE;
  };
  const bool f32 = type == CU_TENSOR_MAP_DATA_TYPE_FLOAT32;
  if (type != CU_TENSOR_MAP_DATA_TYPE_FLOAT16 && type != CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 && !f32)
    return bad("element type (model: 16-bit floats, float32)");
  if (rank != 3) return bad("rank (model: 3)");
  if (reinterpret_cast<uintptr_t>(addr) % 16) return bad("global address not 16-byte aligned");
  if (il != CU_TENSOR_MAP_INTERLEAVE_NONE || sw != CU_TENSOR_MAP_SWIZZLE_128B) return bad("interleave / swizzle (model: none / 128B)");
  for (int i = 0; i < 3; ++i) {
    if (dims[i] < 1 || dims[i] > (uint64_t(1) << 32)) return bad("globalDim out of [1, 2^32]");
    if (box[i] < 1 || box[i] > 256) return bad("boxDim out of [1, 256]");
    if (es[i] != 1) return bad("element strides (model: 1)");
  }
  for (int i = 0; i < 2; ++i)
    if (strides[i] % 16 || strides[i] >= (uint64_t(1) << 40)) return bad("globalStrides not a multiple of 16 below 2^40");
  if (box[0] * (f32 ? 4 : 2) != 128) return bad("inner box of 128 bytes (the 128B swizzle's span; model: exactly that)");
  TensorMap t{};
  t.magic = kMapMagic;
  t.elemBytes = f32 ? 4 : 2;
  t.base = static_cast<const unsigned char*>(addr);
  for (int i = 0; i < 3; ++i) {
    t.dims[i] = dims[i];
    t.box[i] = box[i];
  }
  t.strides[0] = strides[0];
  t.strides[1] = strides[1];
  std::memset(m, 0, sizeof(*m));
  std::memcpy(m, &t, sizeof(t));
  return CUDA_SUCCESS;
}

// ------------------------------------------------------------------ fibers and blocks

struct Barrier {
  int count = 0, expected = 0;
  uint64_t gen = 0;
};

struct MBar {
  int count = 0, pending = 0;
  int64_t tx = 0;
  uint64_t phase = 0;  // completed phases
  bool expectedThisPhase = false;
};

struct Thread {
  ucontext_t ctx;
  uint3 tid;
  int index = 0;
  bool done = false;
  bool (*pred)(const void*, uint64_t) = nullptr;  // blocked until pred(pa, pb)
  const void* pa = nullptr;
  uint64_t pb = 0;
  const char* what = "";
  uint32_t waitAddr = 0;
  bool slow = false;  // stalled: runs only when no other thread can
  // wgmma bookkeeping
  int opsIssued = 0, commits = 0;
  int64_t cpGroups = 0;   // cp.async groups committed
  int64_t bulkGroups = 0;  // cp.async.bulk groups committed
  bool wgFenced = false;  // a wgmma.fence since the last wait_group
  std::unordered_map<float*, int> inflight;                 // accumulator array -> products in flight
  std::unordered_map<float*, std::vector<float>> shadow;    // results not yet written back
};

struct Op {
  int N = 0, mnA = 0, mnB = 0, acc = 0, group = 0;
  bool bf16 = false, rs = false;
  uint64_t da = 0, db = 0;
  int issued = 0;
  float* d[128] = {};
  const uint32_t* a[128] = {};
  uint32_t aSnap[128][4] = {};
  bool chained[128] = {};
  std::vector<float> dSnap;  // [128][N / 2]
  std::vector<float> Asnap, Bsnap;
};

struct Warpgroup {
  std::deque<Op> ops;  // issued, not retired; ops[0] is op number `base`
  int base = 0;
  std::vector<int> groupEnd;  // ops issued at each commit
  Barrier bar;
  int regs = 0;  // registers per thread now
  int64_t* pool = nullptr;
};

struct Copy {
  uint32_t dst, bar;
  TensorMap map;
  int c[3];
};

// cp.reduce.async.bulk.tensor (add, float32 box, shared::cta -> global): the source is read, as the
// async proxy sees it, when the model completes it (at a random later point, or at the thread's wait).
struct BulkRed {
  uint32_t src;
  int thread;
  int64_t group;  // the thread's bulk group, -1 until committed
  TensorMap map;
  int c[3];
};

struct CpAsync {
  unsigned char* dst;
  const unsigned char* src;
  int bytes, srcBytes, thread;
  int64_t group;  // the thread's commit group, -1 until committed
};

// A warp's operands of one mma.sync / ldmatrix, one slot per lane.
struct LaneSlot {
  float* c;
  const uint32_t* a;
  uint32_t b[2];
  uint32_t addr;
  uint32_t* r;
  int flag;  // mma: 0 f16, 1 bf16, 2 tf32; ldmatrix: .trans
};

struct Block {
  std::vector<Thread> th;
  unsigned char* smem = nullptr;
  std::vector<unsigned char> async;  // shared memory as the async proxy (wgmma) sees it
  int64_t regPool = 0;                // registers released by setmaxnreg.dec, not yet taken by .inc
  size_t smemBytes = 0;
  uint32_t smemBase = 0;
  std::map<uint32_t, MBar> bars;
  Barrier all;
  std::vector<Barrier> warpBar;
  std::vector<std::vector<uint32_t>> slots;
  Barrier named[16];
  std::vector<Warpgroup> wg;
  std::deque<Copy> copies;
  std::deque<CpAsync> cpAsync;
  std::deque<BulkRed> bulk;
  std::vector<std::vector<LaneSlot>> lanes;  // [warp][lane]
  bool failed = false;
  uint3 idx, grid, dim;
};

Block* g_blk = nullptr;
Thread* g_cur = nullptr;
ucontext_t g_sched;
const std::function<void()>* g_body = nullptr;
std::mt19937_64 g_rng;

constexpr uint32_t kPoison = 0x7fc0deadu;

[[noreturn]] void park() {
  // A failed fiber gives up its block: the scheduler never resumes it.
  swapcontext(&g_cur->ctx, &g_sched);
  std::abort();
}

std::string where() {
  if (!g_blk || !g_cur) return "";
  char buf[96];
  std::snprintf(buf, sizeof buf, " [block (%u, %u, %u), thread %u]", g_blk->idx.x, g_blk->idx.y, g_blk->idx.z, g_cur->tid.x);
  return buf;
}

void block_until(bool (*pred)(const void*, uint64_t), const void* pa, uint64_t pb, const char* what, uint32_t addr = 0) {
  if (pred(pa, pb)) return;
  g_cur->pred = pred;
  g_cur->pa = pa;
  g_cur->pb = pb;
  g_cur->what = what;
  g_cur->waitAddr = addr;
  swapcontext(&g_cur->ctx, &g_sched);
  g_cur->pred = nullptr;
}

bool gen_moved(const void* p, uint64_t g) { return *static_cast<const uint64_t*>(p) != g; }

constexpr uint64_t kStallOdds = 256;  // 1 in kStallOdds calls stalls
void maybe_stall() {
  if (!g_cur || g_rng() % kStallOdds) return;
  g_cur->slow = true;
  g_cur->what = "stalled";
  swapcontext(&g_cur->ctx, &g_sched);
}

template <class F>
void barrier_wait(Barrier& b, int n, const char* what, F&& last) {
  if (b.count == 0) b.expected = n;
  else if (b.expected != n) fail("a barrier's arrivals disagree on its thread count");
  const uint64_t g = b.gen;
  if (++b.count == n) {
    last();
    b.count = 0;
    ++b.gen;
    return;
  }
  block_until(gen_moved, &b.gen, g, what);
}
void barrier_wait(Barrier& b, int n, const char* what) {
  barrier_wait(b, n, what, [] {});
}

unsigned char* smem_at(uint32_t addr, size_t n, const char* what) {
  Block& B = *g_blk;
  if (addr < B.smemBase || uint64_t(addr) + n > uint64_t(B.smemBase) + B.smemBytes) {
    char buf[200];
    std::snprintf(buf, sizeof buf, "%s: shared bytes [%u, %llu) outside the allocation [%u, %llu)", what, addr,
                  (unsigned long long)(addr + n), B.smemBase, (unsigned long long)(B.smemBase + B.smemBytes));
    fail(buf);
  }
  return B.smem + (addr - B.smemBase);
}

uint32_t swz(uint32_t a) { return a ^ (((a >> 7) & 7u) << 4); }

MBar& mbar(uint32_t bar, const char* what) {
  if (bar % 8) fail((std::string(what) + ": mbarrier address not 8-byte aligned").c_str());
  smem_at(bar, 8, what);
  auto it = g_blk->bars.find(bar);
  if (it == g_blk->bars.end()) fail((std::string(what) + ": mbarrier not initialised").c_str());
  return it->second;
}

void mbar_complete_check(MBar& b) {
  if (b.pending == 0 && b.tx == 0) {
    ++b.phase;
    b.pending = b.count;
    b.expectedThisPhase = false;
  }
}

float half_to_float(uint16_t h, bool bf16) { return bf16 ? __bfloat162float(__nv_bfloat16{h}) : __half2float(__half{h}); }

// Calls f(global address of the element, or nullptr outside the tensor; its offset in the block's
// shared memory) for every element of map m's box at coordinates c, laid out from shared address s0
// as the 128-byte swizzle puts it.
template <class F>
void for_box(const TensorMap& m, const int (&c)[3], uint32_t s0, F&& f) {
  const uint32_t eb = uint32_t(m.elemBytes), rowBytes = m.box[0] * eb;
  for (uint32_t z = 0; z < m.box[2]; ++z)
    for (uint32_t y = 0; y < m.box[1]; ++y)
      for (uint32_t x = 0; x < m.box[0]; ++x) {
        const int64_t gx = int64_t(c[0]) + x, gy = int64_t(c[1]) + y, gz = int64_t(c[2]) + z;
        const bool in = gx >= 0 && gy >= 0 && gz >= 0 && uint64_t(gx) < m.dims[0] && uint64_t(gy) < m.dims[1] && uint64_t(gz) < m.dims[2];
        unsigned char* g = in ? const_cast<unsigned char*>(m.base) + uint64_t(gz) * m.strides[1] + uint64_t(gy) * m.strides[0] + uint64_t(gx) * eb
                              : nullptr;
        f(g, swz(s0 + (z * m.box[1] + y) * rowBytes + eb * x) - g_blk->smemBase);
      }
}

void complete_copy(size_t which) {
  Block& B = *g_blk;
  Copy cp = B.copies[which];
  B.copies.erase(B.copies.begin() + long(which));
  const TensorMap& m = cp.map;
  for_box(m, cp.c, cp.dst, [&](const unsigned char* g, uint32_t off) {
    uint16_t v = 0;
    if (g) std::memcpy(&v, g, 2);
    std::memcpy(B.smem + off, &v, 2);
    std::memcpy(B.async.data() + off, &v, 2);
  });
  auto it = B.bars.find(cp.bar);
  MBar& b = it->second;
  if (!b.expectedThisPhase) {
    g_failures.push_back("TMA: bytes delivered to an mbarrier phase that expects none (more bytes than expect_tx announced)");
    B.failed = true;
    return;
  }
  b.tx -= int64_t(m.box[0]) * m.box[1] * m.box[2] * 2;
  ++g_stats.copies;
  mbar_complete_check(b);
}

void complete_cp_async(size_t which) {
  Block& B = *g_blk;
  const CpAsync c = B.cpAsync[which];
  B.cpAsync.erase(B.cpAsync.begin() + long(which));
  std::memcpy(c.dst, c.src, size_t(c.srcBytes));
  std::memset(c.dst + c.srcBytes, 0, size_t(c.bytes - c.srcBytes));
  ++g_stats.copies;
}

void complete_bulk(size_t which) {
  Block& B = *g_blk;
  const BulkRed r = B.bulk[which];
  B.bulk.erase(B.bulk.begin() + long(which));
  // The box as the 128-byte swizzle lays it out from src (1 KiB-aligned); elements outside the tensor
  // are dropped.
  for_box(r.map, r.c, r.src, [&](unsigned char* g, uint32_t off) {
    if (!g) return;
    float v, x;
    std::memcpy(&v, B.async.data() + off, 4);
    std::memcpy(&x, g, 4);
    x += v;
    std::memcpy(g, &x, 4);
  });
  ++g_stats.copies;
}

void fiber_main() {
  (*g_body)();
  Thread& t = *g_cur;
  for (const BulkRed& r : g_blk->bulk)
    if (r.thread == t.index) fail("the thread exits with a bulk reduction it has not waited for");
  const Warpgroup& W = g_blk->wg[size_t(t.index / 128)];
  if (t.opsIssued > W.base) fail("the thread exits with wgmma products in flight");
  t.done = true;
  swapcontext(&t.ctx, &g_sched);
  std::abort();
}

// Stacks for the fibers of one block, reused from block to block.
constexpr size_t kStack = 256 * 1024;
unsigned char* g_stacks = nullptr;
size_t g_stackCount = 0;

// Shared memory with a guard page after it (a store past the allocation faults).
unsigned char* g_smemMap = nullptr;
size_t g_smemMapBytes = 0;

unsigned char* smem_buffer(size_t bytes) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  const size_t need = (bytes + page - 1) / page * page + page;
  if (need > g_smemMapBytes) {
    if (g_smemMap) munmap(g_smemMap, g_smemMapBytes);
    g_smemMap = static_cast<unsigned char*>(mmap(nullptr, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (g_smemMap == MAP_FAILED) {
      std::perror("mmap");
      std::exit(2);
    }
    g_smemMapBytes = need;
  }
  mprotect(g_smemMap, g_smemMapBytes, PROT_READ | PROT_WRITE);
  mprotect(g_smemMap + g_smemMapBytes - page, page, PROT_NONE);
  unsigned char* p = g_smemMap + g_smemMapBytes - page - bytes;
  std::memset(p, 0xFF, bytes);
  return p;
}

void describe_deadlock(Block& B) {
  std::map<std::string, std::vector<unsigned>> waits;
  for (const Thread& t : B.th)
    if (!t.done) {
      char buf[120];
      if (t.waitAddr) std::snprintf(buf, sizeof buf, "%s (shared address %u)", t.what, t.waitAddr);
      else std::snprintf(buf, sizeof buf, "%s", t.what);
      waits[buf].push_back(t.tid.x);
    }
  std::string msg = "deadlock in block (" + std::to_string(B.idx.x) + ", " + std::to_string(B.idx.y) + ", " + std::to_string(B.idx.z) + "):";
  for (auto& w : waits) {
    msg += " " + std::to_string(w.second.size()) + " threads (first " + std::to_string(w.second[0]) + ") wait on " + w.first + ";";
  }
  g_failures.push_back(msg);
}

void run_block(uint3 idx, dim3 grid, dim3 dim, size_t smem, const std::function<void()>& body) {
  Block B;
  const int n = int(dim.x * dim.y * dim.z);
  B.idx = idx;
  B.grid = uint3{grid.x, grid.y, grid.z};
  B.dim = uint3{dim.x, dim.y, dim.z};
  B.smemBytes = smem;
  B.smem = smem_buffer(smem ? smem : 1);
  B.async.assign(smem ? smem : 1, 0xFF);
  B.smemBase = g_opt.smemBase;
  B.th.resize(size_t(n));
  B.warpBar.resize(size_t((n + 31) / 32));
  B.slots.assign(size_t((n + 31) / 32), std::vector<uint32_t>(32));
  B.wg.resize(size_t((n + 127) / 128));
  B.lanes.assign(size_t((n + 31) / 32), std::vector<LaneSlot>(32));
  for (Warpgroup& w : B.wg) {
    w.regs = std::min(255, 65536 / n) / 8 * 8;  // the launch's registers per thread
    w.pool = &B.regPool;
  }
  if (size_t(n) > g_stackCount) {
    g_stacks = static_cast<unsigned char*>(mmap(nullptr, kStack * size_t(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    if (g_stacks == MAP_FAILED) {
      std::perror("mmap");
      std::exit(2);
    }
    g_stackCount = size_t(n);
  }
  g_blk = &B;
  g_body = &body;
  for (int i = 0; i < n; ++i) {
    Thread& t = B.th[size_t(i)];
    t.index = i;
    t.tid = uint3{unsigned(i) % dim.x, (unsigned(i) / dim.x) % dim.y, unsigned(i) / (dim.x * dim.y)};
    getcontext(&t.ctx);
    t.ctx.uc_stack.ss_sp = g_stacks + kStack * size_t(i);
    t.ctx.uc_stack.ss_size = kStack;
    t.ctx.uc_link = nullptr;
    makecontext(&t.ctx, fiber_main, 0);
  }
  size_t rr = 0;
  for (;;) {
    if (B.failed) break;
    if (!B.copies.empty() && g_rng() % 4 == 0) {
      complete_copy(size_t(g_rng() % B.copies.size()));
      continue;
    }
    if (!B.cpAsync.empty() && g_rng() % 4 == 0) {
      complete_cp_async(size_t(g_rng() % B.cpAsync.size()));
      continue;
    }
    // Bulk reductions stay pending far longer than copies (adversarially: the kernel must wait for
    // them before it reuses their staging rows or exits): 1 in 1024 scheduling steps.
    if (!B.bulk.empty() && g_rng() % 1024 == 0) {
      complete_bulk(size_t(g_rng() % B.bulk.size()));
      continue;
    }
    if (g_rng() % 16 == 0) rr = size_t(g_rng() % size_t(n));
    int pick = -1, slowPick = -1;
    bool live = false;
    for (int k = 0; k < n; ++k) {
      Thread& t = B.th[(rr + size_t(k)) % size_t(n)];
      if (t.done) continue;
      live = true;
      if (!t.pred || t.pred(t.pa, t.pb)) {
        if (t.slow) {
          if (slowPick < 0) slowPick = t.index;
          continue;
        }
        pick = t.index;
        break;
      }
    }
    if (pick < 0 && slowPick >= 0) {
      pick = slowPick;
      B.th[size_t(pick)].slow = false;
    }
    if (pick < 0) {
      if (!live) break;  // every thread finished
      if (!B.copies.empty()) {
        complete_copy(size_t(g_rng() % B.copies.size()));
        continue;
      }
      if (!B.cpAsync.empty()) {
        complete_cp_async(size_t(g_rng() % B.cpAsync.size()));
        continue;
      }
      if (!B.bulk.empty()) {
        complete_bulk(size_t(g_rng() % B.bulk.size()));
        continue;
      }
      describe_deadlock(B);
      B.failed = true;
      break;
    }
    g_cur = &B.th[size_t(pick)];
    ++g_stats.switches;
    swapcontext(&g_sched, &g_cur->ctx);
    g_cur = nullptr;
    rr = size_t(pick) + 1;
  }
  for (int id = 0; id < 16 && !B.failed; ++id)
    if (B.named[id].count) {
      g_failures.push_back("named barrier " + std::to_string(id) + " has " + std::to_string(B.named[id].count) +
                           " arrivals pending when the block ends");
      B.failed = true;
    }
  if (B.failed) g_error = cudaErrorLaunchFailure;
  g_blk = nullptr;
}

// ------------------------------------------------------------------ wgmma

// The [extent][16] operand a descriptor addresses, as `view` (the async or the generic proxy's) holds it.
std::vector<float> read_operand(uint64_t desc, int extent, int mn, bool bf16, const char* what, const unsigned char* view) {
  if ((desc >> 14) & 3 || (desc >> 30) & 3 || (desc >> 46) & 0xFFFF || (desc >> 62) != 1) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s: descriptor %#llx has reserved bits, a base offset, or not the 128-byte swizzle", what,
                  (unsigned long long)desc);
    fail(buf);
  }
  const uint32_t start = uint32_t(desc & 0x3FFF) << 4, lbo = uint32_t((desc >> 16) & 0x3FFF) << 4, sbo = uint32_t((desc >> 32) & 0x3FFF) << 4;
  std::vector<float> out(size_t(extent) * 16);
  for (int i = 0; i < extent; ++i)
    for (int j = 0; j < 16; ++j) {
      const uint32_t logical = mn ? start + uint32_t(i / 64) * lbo + uint32_t(j / 8) * sbo + uint32_t(j % 8) * 128 + 2 * uint32_t(i % 64)
                                  : start + uint32_t(i / 8) * sbo + uint32_t(i % 8) * 128 + 2 * uint32_t(j);
      uint16_t h;
      std::memcpy(&h, view + (smem_at(swz(logical), 2, what) - g_blk->smem), 2);
      out[size_t(i) * 16 + size_t(j)] = half_to_float(h, bf16);
    }
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void execute(int wgIndex, Op& op) {
  if (op.issued != 128) fail("a wgmma retired that not every thread of the warpgroup issued");
  const int half = op.N / 2;
  std::vector<float> A(64 * 16);
  if (op.rs) {
    for (int lt = 0; lt < 128; ++lt) {
      if (std::memcmp(op.a[lt], op.aSnap[lt], 16)) fail("wgmma: A registers changed while the product was in flight");
      const int w = lt / 32, l = lt % 32;
      for (int r = 0; r < 4; ++r)
        for (int e = 0; e < 2; ++e) {
          const int row = 16 * w + l / 4 + 8 * (r % 2), k = 2 * (l % 4) + 8 * (r / 2) + e;
          A[size_t(row) * 16 + size_t(k)] = half_to_float(uint16_t(op.a[lt][r] >> (16 * e)), op.bf16);
        }
    }
  } else {
    A = read_operand(op.da, 64, op.mnA, op.bf16, "wgmma A", g_blk->async.data());
    if (!same_bits(A, op.Asnap) || !same_bits(read_operand(op.da, 64, op.mnA, op.bf16, "wgmma A", g_blk->smem), op.Asnap))
      fail("wgmma: shared A operand changed while the product was in flight");
  }
  const std::vector<float> Bm = read_operand(op.db, op.N, op.mnB, op.bf16, "wgmma B", g_blk->async.data());
  if (!same_bits(Bm, op.Bsnap) || !same_bits(read_operand(op.db, op.N, op.mnB, op.bf16, "wgmma B", g_blk->smem), op.Bsnap))
    fail("wgmma: shared B operand changed while the product was in flight");
  for (int lt = 0; lt < 128; ++lt) {
    Thread& t = g_blk->th[size_t(wgIndex * 128 + lt)];
    float* d = op.d[lt];
    std::vector<float> cur(size_t(half), 0.f);
    if (op.acc) {
      if (op.chained[lt]) cur = t.shadow[d];
      else std::copy(op.dSnap.begin() + lt * half, op.dSnap.begin() + (lt + 1) * half, cur.begin());
    }
    const int w = lt / 32, l = lt % 32;
    for (int x = 0; x < half; ++x) {
      const int i = x / 4, h = (x / 2) % 2, e = x % 2;
      const int row = 16 * w + l / 4 + 8 * h, col = 8 * i + 2 * (l % 4) + e;
      double s = 0;
      for (int k = 0; k < 16; ++k) s += double(A[size_t(row) * 16 + size_t(k)]) * double(Bm[size_t(col) * 16 + size_t(k)]);
      cur[size_t(x)] = float(double(cur[size_t(x)]) + s);
    }
    t.shadow[d] = cur;
    if (--t.inflight[d] == 0) {
      for (int x = 0; x < half; ++x) {
        uint32_t u;
        std::memcpy(&u, d + x, 4);
        if (u != kPoison) fail("wgmma: accumulator registers written while the product was in flight");
      }
      std::memcpy(d, cur.data(), sizeof(float) * size_t(half));
      t.shadow.erase(d);
      t.inflight.erase(d);
    }
  }
  ++g_stats.wgmmas;
}

}  // namespace

// ------------------------------------------------------------------ the shim's entry points

cudaError_t last_error(bool clear) {
  const cudaError_t e = g_error;
  if (clear) g_error = cudaSuccess;
  return e;
}
void set_error(cudaError_t e) {
  if (g_error == cudaSuccess) g_error = e;
}
int device_attribute(cudaDeviceAttr a) {
  switch (a) {
    case cudaDevAttrMultiProcessorCount: return 132;
    case cudaDevAttrComputeCapabilityMajor: return 9;
    case cudaDevAttrComputeCapabilityMinor: return 0;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: return g_opt.smemOptin;
    case cudaDevAttrMaxSharedMemoryPerBlock: return 49152;
  }
  return 0;
}
int kernel_smem_limit(const void* fn) {
  auto it = g_smemLimit.find(fn);
  return it == g_smemLimit.end() ? 48 * 1024 : it->second;
}
void set_kernel_smem_limit(const void* fn, int bytes) { g_smemLimit[fn] = bytes; }
void* driver_entry_point(const char* name) {
  return std::strcmp(name, "cuTensorMapEncodeTiled") == 0 ? reinterpret_cast<void*>(&encode_tiled) : nullptr;
}

void fail(const char* what) {
  g_failures.push_back(std::string(what) + where());
  if (g_blk && g_cur) {
    g_blk->failed = true;
    park();
  }
  g_error = cudaErrorLaunchFailure;
}

const uint3& thread_idx() {
  if (!g_cur) fail("threadIdx outside a kernel");
  return g_cur->tid;
}
const uint3& block_idx() { return g_blk->idx; }
const uint3& grid_dim() { return g_blk->grid; }
const uint3& block_dim() { return g_blk->dim; }
unsigned char* dynamic_smem() { return g_blk->smem; }
size_t dynamic_smem_bytes() { return g_blk->smemBytes; }
uint32_t shared_address(const void* p) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  if (c < g_blk->smem || c > g_blk->smem + g_blk->smemBytes) fail("__cvta_generic_to_shared: not a shared-memory pointer");
  return g_blk->smemBase + uint32_t(c - g_blk->smem);
}
void syncthreads() { barrier_wait(g_blk->all, int(g_blk->th.size()), "__syncthreads"); }
void syncwarp(unsigned mask) {
  if (mask != 0xffffffffu) fail("__syncwarp: partial masks are not modelled");
  barrier_wait(g_blk->warpBar[size_t(g_cur->index / 32)], 32, "__syncwarp");
}
uint32_t shfl(unsigned mask, uint32_t v, int lane, int mode) {
  if (mask != 0xffffffffu) fail("shuffle: partial masks are not modelled");
  const size_t w = size_t(g_cur->index / 32);
  const int me = g_cur->index % 32;
  std::vector<uint32_t>& s = g_blk->slots[w];
  s[size_t(me)] = v;
  barrier_wait(g_blk->warpBar[w], 32, "shuffle");
  // Up / down past the warp's ends: the lane keeps its own value.
  int src = mode == 0 ? lane : mode == 1 ? (me ^ lane) : mode == 2 ? me + lane : me - lane;
  if (src < 0 || src > 31) src = me;
  const uint32_t r = s[size_t(src)];
  barrier_wait(g_blk->warpBar[w], 32, "shuffle");
  return r;
}
float ex2_approx(float x) {
  if (std::fpclassify(x) == FP_SUBNORMAL) x = 0.f;
  const float y = std::exp2(x);
  return std::fpclassify(y) == FP_SUBNORMAL ? 0.f : y;
}

// One warp-wide mma.sync m16n8kK (float32 accumulators): each lane hands in its c, a and b registers;
// the last lane to arrive unpacks every lane's A (16 x K) and B (K x 8) operands with unpack(lane slots,
// A, B), multiplies in float64 and writes each lane's four accumulators (c0, c1: row g, columns 2t,
// 2t + 1; c2, c3: row g + 8), g = lane / 4, t = lane % 4.
template <int K, class Unpack>
void warp_mma(const char* what, int flag, float* c, const uint32_t* a, uint32_t b0, uint32_t b1, Unpack unpack) {
  const size_t w = size_t(g_cur->index / 32);
  LaneSlot& s = g_blk->lanes[w][size_t(g_cur->index % 32)];
  s.c = c;
  s.a = a;
  s.b[0] = b0;
  s.b[1] = b1;
  s.flag = flag;
  barrier_wait(g_blk->warpBar[w], 32, what, [&] {
    std::vector<LaneSlot>& L = g_blk->lanes[w];
    for (int l = 0; l < 32; ++l)
      if (L[size_t(l)].flag != flag) fail((std::string(what) + ": the lanes of a warp disagree on the element type").c_str());
    float A[16][K], Bm[K][8];
    unpack(L, A, Bm);
    float D[32][4];
    for (int l = 0; l < 32; ++l) {
      const int g = l / 4, t = l % 4;
      for (int x = 0; x < 4; ++x) {
        const int row = g + 8 * (x / 2), col = 2 * t + x % 2;
        double acc = L[size_t(l)].c[x];
        for (int k = 0; k < K; ++k) acc += double(A[row][k]) * double(Bm[k][col]);
        D[l][x] = float(acc);
      }
    }
    for (int l = 0; l < 32; ++l) std::memcpy(L[size_t(l)].c, D[l], sizeof D[l]);
    ++g_stats.mmas;
  });
}

// m16n8k16 with half inputs: a0 (g, 2t..2t+1), a1 (g + 8, ...), a2 (g, 2t + 8..), a3 (g + 8, 2t + 8..);
// b0 (2t..2t+1, g), b1 (2t + 8.., g), two 16-bit values per register (low half first).
void mma_m16n8k16(bool bf16, float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  warp_mma<16>("mma.sync", bf16, c, a, b0, b1, [&](std::vector<LaneSlot>& L, float (&A)[16][16], float (&Bm)[16][8]) {
    for (int l = 0; l < 32; ++l) {
      const int g = l / 4, t = l % 4;
      for (int e = 0; e < 2; ++e) {
        const int sh = 16 * e;
        A[g][2 * t + e] = half_to_float(uint16_t(L[size_t(l)].a[0] >> sh), bf16);
        A[g + 8][2 * t + e] = half_to_float(uint16_t(L[size_t(l)].a[1] >> sh), bf16);
        A[g][2 * t + 8 + e] = half_to_float(uint16_t(L[size_t(l)].a[2] >> sh), bf16);
        A[g + 8][2 * t + 8 + e] = half_to_float(uint16_t(L[size_t(l)].a[3] >> sh), bf16);
        Bm[2 * t + e][g] = half_to_float(uint16_t(L[size_t(l)].b[0] >> sh), bf16);
        Bm[2 * t + 8 + e][g] = half_to_float(uint16_t(L[size_t(l)].b[1] >> sh), bf16);
      }
    }
  });
}

// m16n8k8 .tf32: a0 (g, t), a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4); b0 (t, g), b1 (t + 4, g).
// Only an operand's top 19 bits count.
void mma_m16n8k8_tf32(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  warp_mma<8>("mma.sync (tf32)", 2, c, a, b0, b1, [&](std::vector<LaneSlot>& L, float (&A)[16][8], float (&Bm)[8][8]) {
    auto tf = [](uint32_t u) {
      u &= 0xffffe000u;
      float f;
      std::memcpy(&f, &u, 4);
      return f;
    };
    for (int l = 0; l < 32; ++l) {
      const int g = l / 4, t = l % 4;
      A[g][t] = tf(L[size_t(l)].a[0]);
      A[g + 8][t] = tf(L[size_t(l)].a[1]);
      A[g][t + 4] = tf(L[size_t(l)].a[2]);
      A[g + 8][t + 4] = tf(L[size_t(l)].a[3]);
      Bm[t][g] = tf(L[size_t(l)].b[0]);
      Bm[t + 4][g] = tf(L[size_t(l)].b[1]);
    }
  });
}

// cvt.rna.tf32.f32: to the nearest TF32 value, ties away from zero (the result's low 13 bits are 0).
uint32_t cvt_rna_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  return u;
}

void ldmatrix_x4(uint32_t* r, uint32_t addr, bool trans) {
  const size_t w = size_t(g_cur->index / 32);
  LaneSlot& s = g_blk->lanes[w][size_t(g_cur->index % 32)];
  s.addr = addr;
  s.r = r;
  s.flag = trans;
  barrier_wait(g_blk->warpBar[w], 32, "ldmatrix", [&] {
    std::vector<LaneSlot>& L = g_blk->lanes[w];
    uint32_t out[32][4];
    for (int l = 0; l < 32; ++l)
      if (L[size_t(l)].flag != trans) fail("ldmatrix: the lanes of a warp disagree on .trans");
    for (int i = 0; i < 4; ++i) {
      uint16_t M[8][8];
      for (int row = 0; row < 8; ++row) {
        const uint32_t ra = L[size_t(8 * i + row)].addr;
        if (ra % 16) fail("ldmatrix: a row address is not 16-byte aligned");
        std::memcpy(M[row], smem_at(ra, 16, "ldmatrix"), 16);
      }
      for (int l = 0; l < 32; ++l) {
        const int q = l / 4, t = l % 4;
        const uint16_t lo = trans ? M[2 * t][q] : M[q][2 * t], hi = trans ? M[2 * t + 1][q] : M[q][2 * t + 1];
        out[l][i] = uint32_t(lo) | (uint32_t(hi) << 16);
      }
    }
    for (int l = 0; l < 32; ++l) std::memcpy(L[size_t(l)].r, out[l], 16);
  });
}

void cp_async(void* dst, const void* src, int bytes, int srcBytes) {
  const uint32_t a = shared_address(dst);
  smem_at(a, size_t(bytes), "cp.async destination");
  if (a % uint32_t(bytes) || reinterpret_cast<uintptr_t>(src) % uintptr_t(bytes)) fail("cp.async: a misaligned address");
  if (srcBytes < 0 || srcBytes > bytes) fail("cp.async: source size out of [0, cp-size]");
  g_blk->cpAsync.push_back(CpAsync{static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src), bytes, srcBytes, g_cur->index, -1});
}
// The asynchronous copies' groups (cp.async, cp.async.bulk): commit puts this thread's uncommitted
// operations in queue q into its next group; complete_groups completes its operations of committed
// groups but the newest n.
template <class Q>
void commit_group(Q& q, int64_t& groups) {
  const int64_t g = groups++;
  for (auto& op : q)
    if (op.thread == g_cur->index && op.group < 0) op.group = g;
}
template <class Q, class Complete>
void complete_groups(Q& q, int64_t groups, int n, Complete complete) {
  maybe_stall();
  const int64_t last = groups - 1 - n;
  for (size_t i = 0; i < q.size();) {
    if (q[i].thread == g_cur->index && q[i].group >= 0 && q[i].group <= last) complete(i);
    else ++i;
  }
}
void cp_async_commit() { commit_group(g_blk->cpAsync, g_cur->cpGroups); }
// cp.async.wait_group n: this thread's committed groups but the newest n have landed (uncommitted
// copies are not waited for).
void cp_async_wait_group(int n) { complete_groups(g_blk->cpAsync, g_cur->cpGroups, n, complete_cp_async); }
void cp_async_wait_all() { cp_async_wait_group(0); }

void tma_reduce_add(const void* map, uint32_t src, int c0, int c1, int c2) {
  TensorMap m;
  std::memcpy(&m, map, sizeof m);
  if (m.magic != kMapMagic) fail("cp.reduce.async.bulk.tensor: not a tensor map from cuTensorMapEncodeTiled");
  if (m.elemBytes != 4) fail("cp.reduce.async.bulk.tensor: the model adds float32 maps only");
  if (src % 1024) fail("cp.reduce.async.bulk.tensor: source not 1 KiB aligned (128-byte swizzle)");
  smem_at(src, m.box[0] * m.box[1] * m.box[2] * 4, "cp.reduce.async.bulk.tensor source");
  const int c[3] = {c0, c1, c2};
  for (int i = 0; i < 3; ++i)
    if (int64_t(c[i]) + m.box[i] <= 0 || int64_t(c[i]) >= int64_t(m.dims[i])) fail("cp.reduce.async.bulk.tensor: box wholly outside the tensor");
  g_blk->bulk.push_back(BulkRed{src, g_cur->index, -1, m, {c0, c1, c2}});
}
void bulk_commit() { commit_group(g_blk->bulk, g_cur->bulkGroups); }
// cp.async.bulk.wait_group[.read] n: this thread's committed groups but the newest n are done (the
// model completes reads and writes together).
void bulk_wait(int n, bool) { complete_groups(g_blk->bulk, g_cur->bulkGroups, n, complete_bulk); }

void mbar_init(uint32_t bar, uint32_t count) {
  if (bar % 8) fail("mbarrier.init: address not 8-byte aligned");
  smem_at(bar, 8, "mbarrier.init");
  if (count < 1 || count >= (1u << 20)) fail("mbarrier.init: count out of [1, 2^20)");
  MBar& b = g_blk->bars[bar];
  b = MBar{};
  b.count = b.pending = int(count);
}
void mbar_arrive(uint32_t bar) {
  maybe_stall();
  MBar& b = mbar(bar, "mbarrier.arrive");
  if (--b.pending < 0) fail("mbarrier.arrive: more arrivals than the barrier's count");
  mbar_complete_check(b);
}
void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  MBar& b = mbar(bar, "mbarrier.arrive.expect_tx");
  b.tx += bytes;
  b.expectedThisPhase = true;
  if (--b.pending < 0) fail("mbarrier.arrive.expect_tx: more arrivals than the barrier's count");
  mbar_complete_check(b);
}
void mbar_wait(uint32_t bar, uint32_t parity) {
  if (parity > 1) fail("mbarrier.try_wait.parity: parity not 0 or 1");
  MBar& b = mbar(bar, "mbarrier.try_wait.parity");
  block_until([](const void* p, uint64_t par) { return (static_cast<const MBar*>(p)->phase & 1) != par; }, &b, parity,
              parity ? "mbarrier wait (parity 1)" : "mbarrier wait (parity 0)", bar);
}
void tma_load(uint32_t dst, const void* map, int c0, int c1, int c2, uint32_t bar) {
  TensorMap m;
  std::memcpy(&m, map, sizeof m);
  if (m.magic != kMapMagic) fail("cp.async.bulk.tensor: not a tensor map from cuTensorMapEncodeTiled");
  if (m.elemBytes != 2) fail("cp.async.bulk.tensor: the model loads 16-bit maps only");
  if (dst % 1024) fail("cp.async.bulk.tensor: destination not 1 KiB aligned (128-byte swizzle)");
  const uint32_t bytes = m.box[0] * m.box[1] * m.box[2] * 2;
  smem_at(dst, bytes, "cp.async.bulk.tensor destination");
  mbar(bar, "cp.async.bulk.tensor barrier");
  const int c[3] = {c0, c1, c2};
  for (int i = 0; i < 3; ++i)
    if (int64_t(c[i]) + m.box[i] <= 0 || int64_t(c[i]) >= int64_t(m.dims[i])) {
      char buf[200];
      std::snprintf(buf, sizeof buf, "cp.async.bulk.tensor: box at (%d, %d, %d) wholly outside the (%llu, %llu, %llu) tensor", c0, c1, c2,
                    (unsigned long long)m.dims[0], (unsigned long long)m.dims[1], (unsigned long long)m.dims[2]);
      fail(buf);
    }
  g_blk->copies.push_back(Copy{dst, bar, m, {c0, c1, c2}});
}
void setmaxnreg(int regs, bool inc) {
  if (regs % 8 || regs < 24 || regs > 256) fail("setmaxnreg: count not a multiple of 8 in [24, 256]");
  Warpgroup& W = g_blk->wg[size_t(g_cur->index / 128)];
  if (inc ? regs < W.regs : regs > W.regs) fail(inc ? "setmaxnreg.inc below the current count" : "setmaxnreg.dec above the current count");
  if (!inc) {
    barrier_wait(W.bar, 128, "setmaxnreg.dec", [&] {
      *W.pool += int64_t(W.regs - regs) * 128;
      W.regs = regs;
    });
    return;
  }
  barrier_wait(W.bar, 128, "setmaxnreg.inc");
  // The whole warpgroup waits until the block's pool holds the registers; the first thread to run
  // takes them for all 128.
  const uint64_t want = uint64_t(regs);
  block_until(
      [](const void* p, uint64_t r) {
        const Warpgroup* w = static_cast<const Warpgroup*>(p);
        return w->regs == int(r) || *w->pool >= int64_t(int(r) - w->regs) * 128;
      },
      &W, want, "setmaxnreg.inc (registers not released)");
  if (W.regs != regs) {
    *W.pool -= int64_t(regs - W.regs) * 128;
    W.regs = regs;
  }
}
void fence_proxy_async() {
  maybe_stall();
  std::memcpy(g_blk->async.data(), g_blk->smem, g_blk->smemBytes);
}
static void check_named(int id, int count, const char* what) {
  if (id < 1 || id > 15) fail((std::string(what) + ": barrier id out of [1, 15] (0 is __syncthreads)").c_str());
  if (count % 32 || count < 32 || count > int(g_blk->th.size())) fail((std::string(what) + ": thread count not a multiple of 32 within the block").c_str());
}
void named_barrier(int id, int count) {
  check_named(id, count, "bar.sync");
  barrier_wait(g_blk->named[id], count, "bar.sync (named barrier)");
}
void named_barrier_arrive(int id, int count) {
  check_named(id, count, "bar.arrive");
  maybe_stall();
  Barrier& b = g_blk->named[id];
  if (b.count == 0) b.expected = count;
  else if (b.expected != count) fail("a barrier's arrivals disagree on its thread count");
  if (++b.count == count) {
    b.count = 0;
    ++b.gen;
  }
}
void wgmma_fence() { g_cur->wgFenced = true; }
void wgmma(int N, bool bf16, int mnA, int mnB, float* d, uint64_t da, const uint32_t* a, uint64_t db, int accumulate) {
  Thread& t = *g_cur;
  Warpgroup& W = g_blk->wg[size_t(t.index / 128)];
  const int lt = t.index % 128;
  if (!t.wgFenced) fail("wgmma.mma_async without a wgmma.fence since the last wgmma.wait_group");
  const int k = t.opsIssued++;
  const size_t slot = size_t(k - W.base);
  if (slot == W.ops.size()) {
    Op op;
    op.N = N;
    op.bf16 = bf16;
    op.mnA = mnA;
    op.mnB = mnB;
    op.da = da;
    op.db = db;
    op.acc = accumulate ? 1 : 0;
    op.rs = a != nullptr;
    op.group = t.commits;
    op.dSnap.assign(size_t(128 * N / 2), 0.f);
    W.ops.push_back(std::move(op));
  }
  Op& op = W.ops[slot];
  if (op.N != N || op.bf16 != bf16 || op.mnA != mnA || op.mnB != mnB || op.da != da || op.db != db || op.acc != (accumulate ? 1 : 0) ||
      op.rs != (a != nullptr) || op.group != t.commits)
    fail("wgmma: the threads of a warpgroup issue different products (shape, descriptors, accumulate flag or group)");
  op.d[lt] = d;
  op.a[lt] = a;
  if (a) std::memcpy(op.aSnap[lt], a, 16);
  op.chained[lt] = t.inflight[d] > 0;
  if (op.acc && !op.chained[lt]) std::memcpy(op.dSnap.data() + lt * N / 2, d, sizeof(float) * size_t(N / 2));
  for (int x = 0; x < N / 2; ++x) std::memcpy(d + x, &kPoison, 4);
  ++t.inflight[d];
  if (++op.issued == 128) {
    const unsigned char* gen = g_blk->smem;
    const unsigned char* asy = g_blk->async.data();
    if (!op.rs) op.Asnap = read_operand(op.da, 64, op.mnA, op.bf16, "wgmma A", asy);
    op.Bsnap = read_operand(op.db, op.N, op.mnB, op.bf16, "wgmma B", asy);
    if ((!op.rs && !same_bits(read_operand(op.da, 64, op.mnA, op.bf16, "wgmma A", gen), op.Asnap)) ||
        !same_bits(read_operand(op.db, op.N, op.mnB, op.bf16, "wgmma B", gen), op.Bsnap))
      fail("wgmma: an operand holds generic-proxy stores no fence.proxy.async has published");
  }
}
void wgmma_commit() {
  maybe_stall();
  Thread& t = *g_cur;
  Warpgroup& W = g_blk->wg[size_t(t.index / 128)];
  ++t.commits;
  if (size_t(t.commits) > W.groupEnd.size()) W.groupEnd.push_back(t.opsIssued);
  else if (W.groupEnd[size_t(t.commits - 1)] != t.opsIssued) fail("wgmma.commit_group: the threads of a warpgroup commit different groups");
}
void wgmma_wait(int n) {
  maybe_stall();
  Thread& t = *g_cur;
  const int wgi = t.index / 128;
  Warpgroup& W = g_blk->wg[size_t(wgi)];
  if (t.commits > 0 ? W.groupEnd[size_t(t.commits - 1)] != t.opsIssued : t.opsIssued != 0)
    fail("wgmma.wait_group with products issued but not committed");
  const int commits = t.commits;
  barrier_wait(W.bar, 128, "wgmma.wait_group", [&] {
    for (int i = 0; i < 128; ++i)
      if (g_blk->th[size_t(wgi * 128 + i)].commits != commits) fail("wgmma.wait_group: the threads of a warpgroup have committed different groups");
    const int groups = commits - n;
    const int target = groups > 0 ? W.groupEnd[size_t(groups - 1)] : 0;
    while (W.base < target) {
      execute(wgi, W.ops.front());
      W.ops.pop_front();
      ++W.base;
    }
  });
  t.wgFenced = false;
}

void run_grid(const void* fn, dim3 grid, dim3 block, size_t smem, const std::function<void()>& body) {
  // (Also past the device's limit: a kernel opted in on one device model, then launched on a smaller one.)
  if (int64_t(smem) > kernel_smem_limit(fn) || int64_t(smem) > g_opt.smemOptin || block.x * block.y * block.z > 1024 || grid.x == 0 ||
      grid.y == 0 || grid.z == 0) {
    set_error(cudaErrorInvalidValue);
    return;
  }
  ++g_stats.launches;
  g_rng.seed(g_opt.seed + g_stats.launches);
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        run_block(uint3{x, y, z}, grid, block, smem, body);
        ++g_stats.blocks;
        if (g_error == cudaErrorLaunchFailure) return;
      }
}

void set_options(const Options& o) { g_opt = o; }
std::vector<std::string> take_failures() {
  std::vector<std::string> f;
  f.swap(g_failures);
  return f;
}
Stats& stats() { return g_stats; }

}  // namespace kiln_host
