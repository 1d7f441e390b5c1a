// Host-side pieces shared by the two Hopper attention kernels (attention_fwd_sm90.cu,
// attention_bwd_sm90.cu): the problem shape both kernels' parameters start with, and the two-way
// schedule switches the check program measures. Internal to kernels/cuda.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "../cpu/attention.h"

namespace kiln {
namespace cuda {

// Positions and heads fit TMA's int32 coordinates with a tile of slack (sm90_attention_unsupported).
constexpr int64_t kSm90AttnMaxRows = (int64_t(1) << 31) - 1024;

// q [BH, Tq, D], k/v [BH, Tk, D]; the head of each batch row is bh % H, its batch bh / H.
struct Sm90AttnShape {
  int64_t BH, H, Tq, Tk;
  int64_t group;    // heads per group of the block order (sm90_tile in sm90_common.cuh; BH: heads fastest)
  float scale;      // natural units
  float scaleLog2;  // scale * log2(e): the softmax runs on exp2
  const int32_t* keyLens;
};

inline Sm90AttnShape sm90_attn_shape(const cpu::AttentionArgs& a) {
  Sm90AttnShape s;
  s.BH = a.B * a.H;
  s.H = a.H;
  s.Tq = a.Tq;
  s.Tk = a.Tk;
  s.group = s.BH;
  s.scale = float(a.scale);
  s.scaleLog2 = float(a.scale * 1.4426950408889634);
  s.keyLens = a.keyLens;
  return s;
}

// A schedule choice: 2 (3, 4, 5, 6, 7) when the environment variable `var` equals `alt` (`alt3` ...
// `alt7`), 1 when it equals `one`, else the caller's default (get(dflt), 1 unless given), read on
// first use; set(1 ... 7) overrides it (a mode above 2 only where it has a name), set(0) returns to
// the environment's choice.
class Sm90AttnSwitch {
 public:
  static constexpr int kModes = 7;
  constexpr Sm90AttnSwitch(const char* var, const char* alt, const char* alt3 = nullptr, const char* one = nullptr,
                           const char* alt4 = nullptr, const char* alt5 = nullptr, const char* alt6 = nullptr,
                           const char* alt7 = nullptr)
      : var_(var), names_{one, alt, alt3, alt4, alt5, alt6, alt7} {}
  int get(int dflt = 1) {
    int v = v_.load(std::memory_order_relaxed);
    if (v == 0) {
      const char* e = std::getenv(var_);
      v = -1;
      for (int m = 0; m < kModes && e; ++m)
        if (names_[m] && std::strcmp(e, names_[m]) == 0) v = m + 1;
      int expected = 0;
      if (!v_.compare_exchange_strong(expected, v)) v = expected;
    }
    return v < 0 ? dflt : v;
  }
  void set(int mode) { v_.store(mode >= 1 && mode <= kModes && (mode <= 2 || names_[mode - 1]) ? mode : 0); }

 private:
  const char* var_;
  const char* names_[kModes];  // modes 1 ... 7
  std::atomic<int> v_{0};
};

// The order in which the blocks take their tiles (sm90_tile): 1 (the default) every (batch, head)'s
// tile t before any tile t + 1, heads fastest; 2 heads in groups of about two waves of blocks, a
// group's tiles (heaviest first) before the next group's, so that the blocks running at once share a
// few heads' operands (and, in the backward, dQ accumulator rows) in L2 instead of each reading its
// own head's (KILN_ATTENTION_SM90_ORDER=heads|grouped; sm90_attention_set_order). Session 11: not yet
// run on a GPU. At T = 1k session 10's backward ran at 171 TFLOP/s against 477 at 8k: with 128-256
// heads, the 132 blocks running at once each worked on a different head.
inline Sm90AttnSwitch g_sm90Order("KILN_ATTENTION_SM90_ORDER", "grouped", nullptr, "heads");
inline std::atomic<int64_t> g_sm90GroupBlocks{0};  // blocks per group (0: two waves); for the host model's tests

// Persistent launches (KILN_ATTENTION_SM90_PERSIST=off|on; sm90_attention_set_persistent): 1 one
// block per tile (the default), 2 one block per multiprocessor walking tiles (the forward's pipelined
// schedules; the backward's operand modes 4, 5 and 7). Session 11: not yet run on a GPU.
inline Sm90AttnSwitch g_sm90Persist("KILN_ATTENTION_SM90_PERSIST", "on", nullptr, "off");
inline std::atomic<int64_t> g_sm90PersistBlocks{0};  // > 0: that many blocks instead of one per multiprocessor (tests)

// The blocks of a persistent launch over `tiles` tiles on a device of `sms` multiprocessors.
inline int64_t sm90_persistent_blocks(int64_t tiles, int sms) {
  const int64_t forced = g_sm90PersistBlocks.load(std::memory_order_relaxed);
  return std::min(tiles, forced > 0 ? forced : int64_t(std::max(1, sms)));
}

// Heads per group for BH heads of `tiles` tiles each on a device of `sms` multiprocessors: at least
// two waves of blocks per group, then the groups evened out. Why two waves: a group's heaviest tile
// (causal: about twice its mean) starts when the groups before it are done, so it ends within the
// ideal time only if a group holds at least about two waves of work; and a short last group would
// start later still, hence the evening out.
inline int64_t sm90_group_heads(int64_t BH, int64_t tiles, int sms) {
  if (g_sm90Order.get() != 2 || tiles <= 0 || BH <= 0) return BH;
  const int64_t forced = g_sm90GroupBlocks.load(std::memory_order_relaxed);
  const int64_t target = forced > 0 ? forced : 2 * int64_t(sms > 0 ? sms : 132);
  const int64_t g0 = std::min(BH, std::max<int64_t>(1, (target + tiles - 1) / tiles));
  const int64_t groups = (BH + g0 - 1) / g0;
  return (BH + groups - 1) / groups;
}

}  // namespace cuda
}  // namespace kiln
