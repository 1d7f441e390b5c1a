// Hopper (sm_90a) float16 / bfloat16 matrix product with float32 accumulation: warpgroup MMA
// (wgmma.mma_async m64n256k16, both operands read from shared memory through matrix descriptors)
// fed by the tensor-memory-access unit (cp.async.bulk.tensor, 128-byte swizzle). gemm.cu's dispatch
// (semantics in gemm_api.h) sends it the products large enough to gain from it (gemm_sm90_pays_off)
// on compute capability 9.x; KILN_GEMM_KERNEL=wgmma sends it every product it takes, =mma none.
//
// A block of 384 threads owns 128 x 256 tiles of C (persistent: it walks tiles blockIdx.x,
// blockIdx.x + gridDim.x, ... of each batch matrix blockIdx.z, +gridDim.z, ...). Warpgroup 0 is
// the producer: one thread issues the TMA copies of each 64-deep K slice (A: 128 x 64, B: 256 x 64
// elements) into a 4-stage ring of shared-memory buffers, each stage guarded by two mbarriers
// ("full": the bytes landed, "empty": both consumers are done reading it). Warpgroups 1 and 2 are
// the consumers: each multiplies its 64 rows of the tile by the 256 columns (128 float32
// accumulators a thread) and writes them to C with bounds checks, alpha and beta. setmaxnreg
// moves registers from the producer (40) to the consumers (232).
//
// Every TMA box is 64 x 64 elements: 64 rows of 128 bytes, swizzled in 1 KiB atoms of 8 rows (the
// 16-byte chunk c of row r lands at chunk c ^ (r % 8)). A k-contiguous operand (A unless transA, B when
// transB) fills [rows][64 k], the wgmma "K-major" canonical layout: 8-row groups 1 KiB apart
// (stride byte offset), each k16 step 32 bytes further along the row. An m/n-contiguous operand
// (A when transA, B otherwise) fills boxes of [64 k][64 m|n], 8 KiB apart: the "MN-major" layout
// (the wgmma transpose bit set), 64-column blocks 8 KiB apart (leading byte offset), 8-row k groups
// 1 KiB apart (stride byte offset), each k16 step 2 KiB further. The TMA unit zero-fills whatever
// lies outside the matrix (boxes wholly past M or N are skipped), so ragged M, N and K need no
// special case until the epilogue.
//
// Device code exists only for sm_90a (CMake compiles this file for it alone); other passes see an
// empty kernel and the host side never launches it off compute capability 9.x.
#include <cuda.h>  // CUtensorMap and its enums: types only, the driver entry point is fetched at run time
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gemm_sm90.h"
#include "sm90_tma.h"
#include "gemm_common.cuh"
#include "sm90_common.cuh"  // KILN_SM90_DEVICE and the PTX wrappers

namespace kiln {
namespace cuda {
namespace {

constexpr int kBM = 128, kBN = 256, kBK = 64, kStages = 4;
constexpr int kConsumers = kBM / 64;             // one warpgroup per 64 rows
constexpr int kThreads = 128 * (1 + kConsumers);  // + the producer warpgroup
constexpr int kBox = 64;                          // TMA box edge (elements): 128-byte rows
constexpr int kBoxBytes = kBox * kBox * 2;
constexpr int kABytes = kBM * kBK * 2, kBBytes = kBN * kBK * 2, kStageBytes = kABytes + kBBytes;
constexpr int kProducerRegs = 40, kConsumerRegs = 232;  // 128 * 40 + 256 * 232 = 384 * 168
// Stages, then 2 * kStages mbarriers; 1 KiB of slack to align the stages to the swizzle atom.
constexpr size_t kSmem = size_t(kStages) * kStageBytes + 2 * kStages * sizeof(uint64_t) + 1024;
static_assert(kBK == kBox && kBM % kBox == 0 && kBN % kBox == 0, "tiles are whole TMA boxes");
static_assert(kBN == 256, "the consumers issue m64n256k16");
static_assert(kABytes == kBM / kBox * kBoxBytes && kBBytes == kBN / kBox * kBoxBytes, "stages are whole boxes");
static_assert(128 * kProducerRegs + 128 * kConsumers * kConsumerRegs <= 65536, "setmaxnreg stays inside the register file");

struct Params {
  int64_t batch, M, N, K, tilesM, tilesN, numK;
  void* C;
  int64_t ldc, sC;
  float alpha, beta;
  bool outF32;  // C is float32 (else the input half type)
  bool pairs;   // C's element pairs (even column, odd column) are aligned for one store
  bool batchA, batchB;  // the operand has a matrix per batch index (else one, broadcast)
};

#ifdef KILN_SM90_DEVICE

using gemm_detail::tile_coords;  // gemm_common.cuh

// PTX wrappers: sm90_common.cuh.
using sm90::fence_acc;
using sm90::mbar_arrive;
using sm90::mbar_arrive_expect_tx;
using sm90::mbar_init;
using sm90::mbar_init_fence;
using sm90::mbar_wait;
using sm90::setmaxnreg_dec;
using sm90::setmaxnreg_inc;
using sm90::smem_desc;
using sm90::smem_u32;
using sm90::tma_load;
using sm90::tma_prefetch_map;
using sm90::wgmma_commit;
using sm90::wgmma_fence;
using sm90::wgmma_wait;

// d (64 x 256 of this warpgroup, float32) += A (64 x 16, descriptor da) * B (16 x 256, descriptor db).
// MN_A / MN_B: 1 when the operand is m- / n-contiguous in shared memory ("MN-major", the wgmma
// transpose bits), 0 when it is k-contiguous ("K-major": A row-major, B column-major).
template <bool BF16, int MN_A, int MN_B>
__device__ __forceinline__ void wgmma_m64n256k16(float (&d)[128], uint64_t da, uint64_t db) {
  sm90::wgmma_ss<256, BF16, MN_A, MN_B>(d, da, db, 1);
}

// ------------------------------------------------------------------ epilogue

using gemm_detail::Out;  // gemm_common.cuh

// C = alpha * d + beta * C for this thread's accumulators: d[4i + 2h + e] is row `row + 8h`,
// column `col + 8i + e` of C (the m64nNk16 accumulator layout: warp w of the warpgroup holds rows
// 16w..16w+15, lane l rows l/4 and l/4 + 8, columns 2(l%4) and 2(l%4) + 1 of every 8-column block).
template <class O>
__device__ __forceinline__ void store_acc(const Params& p, int64_t b, int64_t row, int64_t col, const float (&d)[128]) {
  using T = Out<O>;
  O* const Cb = static_cast<O*>(p.C) + b * p.sC;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t r = row + 8 * h;
    if (r >= p.M) continue;
    O* const Crow = Cb + r * p.ldc;
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const int64_t c = col + 8 * i;
      float v0 = p.alpha * d[4 * i + 2 * h], v1 = p.alpha * d[4 * i + 2 * h + 1];
      if (p.pairs && c + 1 < p.N) {
        auto* const o = reinterpret_cast<typename T::Pair*>(Crow + c);
        if (p.beta != 0.f) {
          const float2 old = T::unpack(*o);
          v0 += p.beta * old.x;
          v1 += p.beta * old.y;
        }
        *o = T::pack(v0, v1);
      } else {
        if (c < p.N) {
          if (p.beta != 0.f) v0 += p.beta * T::load(Crow + c);
          Crow[c] = T::from(v0);
        }
        if (c + 1 < p.N) {
          if (p.beta != 0.f) v1 += p.beta * T::load(Crow + c + 1);
          Crow[c + 1] = T::from(v1);
        }
      }
    }
  }
}

#endif  // KILN_SM90_DEVICE

// ------------------------------------------------------------------ the kernel

// tmA / tmB: 3-d tensor maps (innermost dimension first) of A and B with 64 x 64 boxes:
// A is (K, M, batch) or, transposed, (M, K, batch); B is (N, K, batch) or, transposed, (K, N, batch).
template <bool BF16, bool TA, bool TB>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_wgmma_kernel(const __grid_constant__ CUtensorMap tmA, const __grid_constant__ CUtensorMap tmB, const Params p) {
#ifdef KILN_SM90_DEVICE
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t bars = base + uint32_t(kStages) * kStageBytes;
  auto full = [&](uint32_t s) { return bars + 8u * s; };
  auto empty = [&](uint32_t s) { return bars + 8u * (kStages + s); };
  const int wg = int(threadIdx.x) / 128;
  if (threadIdx.x == 0) {
    for (uint32_t s = 0; s < uint32_t(kStages); ++s) {
      mbar_init(full(s), 1);
      mbar_init(empty(s), kConsumers * 4);  // one arrival per consumer warp
    }
    mbar_init_fence();
  }
  __syncthreads();
  const int64_t tiles = p.tilesM * p.tilesN;

  if (wg == 0) {
    // Producer: one thread walks the same tiles and K slices as the consumers, in the same order.
    setmaxnreg_dec<kProducerRegs>();
    if (threadIdx.x == 0) {
      tma_prefetch_map(&tmA);
      tma_prefetch_map(&tmB);
      uint32_t s = 0, phase = 0;
      for (int64_t b = blockIdx.z; b < p.batch; b += gridDim.z) {
        const int zA = p.batchA ? int(b) : 0, zB = p.batchB ? int(b) : 0;
        for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
          int64_t tm, tn;
          tile_coords(tile, p.tilesM, p.tilesN, tm, tn);
          const int m0 = int(tm * kBM), n0 = int(tn * kBN);
          // Boxes wholly past row M or column N are not loaded: their stale contents only reach
          // rows / columns of C that the epilogue never stores (K boxes always start inside K).
          const int64_t leftM = (p.M - m0 + kBox - 1) / kBox, leftN = (p.N - n0 + kBox - 1) / kBox;
          const int boxesA = leftM < kBM / kBox ? int(leftM) : kBM / kBox, boxesB = leftN < kBN / kBox ? int(leftN) : kBN / kBox;
          const uint32_t bytes = uint32_t(boxesA + boxesB) * kBoxBytes;
          for (int64_t kb = 0; kb < p.numK; ++kb) {
            mbar_wait(empty(s), phase ^ 1u);  // a fresh barrier passes parity 1: every buffer starts free
            mbar_arrive_expect_tx(full(s), bytes);
            const uint32_t sa = base + s * kStageBytes, sb = sa + kABytes;
            const int k0 = int(kb * kBK);
#pragma unroll
            for (int j = 0; j < kBM / kBox; ++j) {
              if (j >= boxesA) break;
              if (TA) tma_load(sa + j * kBoxBytes, &tmA, m0 + j * kBox, k0, zA, full(s));
              else tma_load(sa + j * kBoxBytes, &tmA, k0, m0 + j * kBox, zA, full(s));
            }
#pragma unroll
            for (int j = 0; j < kBN / kBox; ++j) {
              if (j >= boxesB) break;
              if (TB) tma_load(sb + j * kBoxBytes, &tmB, k0, n0 + j * kBox, zB, full(s));
              else tma_load(sb + j * kBoxBytes, &tmB, n0 + j * kBox, k0, zB, full(s));
            }
            if (++s == uint32_t(kStages)) {
              s = 0;
              phase ^= 1u;
            }
          }
        }
      }
    }
    return;
  }

  // Consumers: warpgroup c owns rows [64c, 64c + 64) of each tile. A is m-contiguous when transA;
  // B is n-contiguous unless transB (B^T stored row-major is B column-major, wgmma's default).
  setmaxnreg_inc<kConsumerRegs>();
  const int c = wg - 1, warp = (int(threadIdx.x) / 32) % 4, lane = int(threadIdx.x) % 32;
  // Descriptor offsets: the consumer's A rows start at box c in both layouts; a k16 step advances
  // 32 bytes along a k-contiguous row or 16 rows (2 KiB) of an m/n-contiguous box.
  constexpr uint32_t kStepA = TA ? 16 * 128 : 32, kStepB = TB ? 32 : 16 * 128;
  constexpr uint32_t kLboA = TA ? kBoxBytes : 16, kLboB = TB ? 16 : kBoxBytes;
  uint32_t s = 0, phase = 0;
  float d[128];
  for (int64_t b = blockIdx.z; b < p.batch; b += gridDim.z) {
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      int64_t tm, tn;
      tile_coords(tile, p.tilesM, p.tilesN, tm, tn);
#pragma unroll
      for (int i = 0; i < 128; ++i) d[i] = 0.f;
      fence_acc(d);
      uint32_t prev = 0;
      for (int64_t kb = 0; kb < p.numK; ++kb) {
        mbar_wait(full(s), phase);
        __syncwarp();  // the wait loop may leave lanes apart; the .aligned wgmma instructions need them together
        const uint32_t sa = base + s * kStageBytes + uint32_t(c) * kBoxBytes, sb = base + s * kStageBytes + kABytes;
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < kBK / 16; ++kk)
          wgmma_m64n256k16<BF16, TA ? 1 : 0, TB ? 0 : 1>(d, smem_desc(sa + kk * kStepA, kLboA, 1024),
                                                         smem_desc(sb + kk * kStepB, kLboB, 1024));
        wgmma_commit();
        // Keep one group of MMAs in flight: the previous slice's group is done, so its buffers go back.
        if (kb > 0) {
          wgmma_wait<1>();
          if (lane == 0) mbar_arrive(empty(prev));
        }
        prev = s;
        if (++s == uint32_t(kStages)) {
          s = 0;
          phase ^= 1u;
        }
      }
      wgmma_wait<0>();
      fence_acc(d);
      if (lane == 0) mbar_arrive(empty(prev));

      const int64_t row = tm * kBM + 64 * c + 16 * warp + (lane >> 2), col = tn * kBN + 2 * (lane & 3);
      if (p.outF32) store_acc<float>(p, b, row, col, d);
      else if (BF16) store_acc<__nv_bfloat16>(p, b, row, col, d);
      else store_acc<__half>(p, b, row, col, d);
    }
  }
#endif  // KILN_SM90_DEVICE
}

// ------------------------------------------------------------------ host side

using gemm_detail::device_info;  // gemm_common.cuh
using gemm_detail::DeviceInfo;
using gemm_detail::launched;

constexpr int64_t kMaxDim = (int64_t(1) << 31) - 1024;  // TMA coordinates are int32, tiles overshoot by < 256

bool encode(CUtensorMap& map, bool bf16, const void* ptr, int64_t inner, int64_t outer, int64_t ld, int64_t batch, int64_t stride) {
  static_assert(kBox == kTmaBox, "gemm_sm90's boxes are sm90_tma.h's");
  return tma_encode_box64(map, bf16, ptr, inner, outer, ld, batch, stride);
}

template <bool BF16, bool TA, bool TB>
std::string launch(const CUtensorMap& tmA, const CUtensorMap& tmB, const Params& p, bool& handled) {
  auto kernel = gemm_wgmma_kernel<BF16, TA, TB>;
  if (!sm90_kernel_ready<gemm_wgmma_kernel<BF16, TA, TB>>(kSmem)) return "";  // handled stays false: the portable kernels run
  const int64_t tiles = p.tilesM * p.tilesN;
  const int64_t gz = p.batch < 65535 ? p.batch : 65535;
  int64_t gx = (device_info().sms + gz - 1) / gz;  // persistent blocks: about one per SM over all batches
  if (gx > tiles) gx = tiles;
  if (gx < 1) gx = 1;
  handled = true;
  kernel<<<dim3(unsigned(gx), 1, unsigned(gz)), kThreads, kSmem>>>(tmA, tmB, p);
  return launched();
}

}  // namespace

// cuTensorMapEncodeTiled from the driver the runtime already loaded (no link to libcuda).
static PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
    const cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q);
#else
    const cudaError_t e = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &f, cudaEnableDefault, &q);
#endif
    if (e != cudaSuccess || q != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      f = nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

bool tma_available() { return encode_fn() != nullptr; }

// A 3-d tiled map with the 128-byte swizzle, unit element strides, zero fill (loads) past the edges.
static bool encode_3d(CUtensorMap& map, CUtensorMapDataType type, const void* ptr, const cuuint64_t (&dims)[3],
                      const cuuint64_t (&strides)[2], const cuuint32_t (&box)[3]) {
  if (!encode_fn()) return false;
  const cuuint32_t elemStrides[3] = {1, 1, 1};
  return encode_fn()(&map, type, 3, const_cast<void*>(ptr), dims, strides, box, elemStrides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                     CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

bool tma_encode_box64(CUtensorMap& map, bool bf16, const void* ptr, int64_t inner, int64_t outer, int64_t ld, int64_t batch,
                      int64_t stride) {
  const bool many = batch > 1 && stride != 0;
  const cuuint64_t dims[3] = {cuuint64_t(inner), cuuint64_t(outer), cuuint64_t(many ? batch : 1)};
  const cuuint64_t strides[2] = {cuuint64_t(ld) * 2, cuuint64_t(many ? stride : ld * outer) * 2};
  const cuuint32_t box[3] = {kTmaBox, kTmaBox, 1};
  return encode_3d(map, bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, ptr, dims, strides, box);
}

bool tma_encode_f32_rows(CUtensorMap& map, float* ptr, int64_t cols, int64_t rows, int64_t batch, uint32_t boxRows) {
  const cuuint64_t dims[3] = {cuuint64_t(cols), cuuint64_t(rows), cuuint64_t(batch)};
  const cuuint64_t strides[2] = {cuuint64_t(cols) * 4, cuuint64_t(rows * cols) * 4};
  const cuuint32_t box[3] = {32, boxRows, 1};
  return encode_3d(map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, ptr, dims, strides, box);
}

Sm90Choice gemm_sm90_choice() {
  static const Sm90Choice choice = [] {
    if (!(device_info().error.empty() && device_info().major == 9)) return Sm90Choice::Never;
    const char* e = std::getenv("KILN_GEMM_KERNEL");
    if (e && std::strcmp(e, "wgmma") == 0) return Sm90Choice::Always;
    if (e && std::strcmp(e, "mma") == 0) return Sm90Choice::Never;
    return Sm90Choice::Large;
  }();
  return choice;
}

bool gemm_sm90_pays_off(const GemmArgs& a) {
  // One 128 x 256 tile per block and a 4-stage pipeline of 64-deep K slices: with few tiles the
  // wgmma kernel leaves SMs idle that mma.sync's smaller tiles would use, and with a short K its
  // pipeline never fills. Measured on an H100 (bench/results/h100-2026-11-26-s4, "cross" lines of
  // gemm_cuda_check): wgmma / mma.sync 0.65-0.93x at 8-32 tiles (512^3, 1024^3) and at K = 64-128
  // (22-42 tiles), 1.28x at 63 tiles with K = 256, 1.9-3.2x from 128 tiles (2048^3) up.
  const int64_t tiles = ((a.M + kBM - 1) / kBM) * ((a.N + kBN - 1) / kBN) * std::max<int64_t>(a.batch, 1);
  return a.K >= 256 && tiles * 3 >= int64_t(device_info().sms);
}

std::string gemm_sm90_unsupported(GemmType ab, GemmType c, const GemmArgs& a) {
  if (!(ab == GemmType::BF16 || ab == GemmType::F16)) return "inputs are not float16 / bfloat16";
  if (!(c == ab || c == GemmType::F32)) return "unsupported output type";
  if (a.batch < 1 || a.M < 1 || a.N < 1 || a.K < 1) return "empty product (K = 0 included)";
  if (a.M > kMaxDim || a.N > kMaxDim || a.K > kMaxDim || a.batch > kMaxDim) return "a dimension is 2^31 or more";
  // TMA: 16-byte aligned bases, row and batch strides in whole 16-byte units.
  if ((reinterpret_cast<uintptr_t>(a.A) & 15) || (reinterpret_cast<uintptr_t>(a.B) & 15)) return "A or B is not 16-byte aligned";
  if (a.lda % 8 || a.ldb % 8) return "lda or ldb is not a multiple of 8 elements";
  if (a.batch > 1 && (a.strideA % 8 || a.strideB % 8)) return "a batch stride is not a multiple of 8 elements";
  if (a.lda < 1 || a.ldb < 1 || a.strideA < 0 || a.strideB < 0) return "negative or zero strides";
  const DeviceInfo& d = device_info();
  if (!d.error.empty() || d.major != 9) return "the device is not compute capability 9.x";
  if (size_t(d.smemOptin) < kSmem) return "not enough shared memory per block";
  if (!tma_available()) return "cuTensorMapEncodeTiled is not available from the driver";
  return "";
}

std::string gemm_sm90(GemmType ab, GemmType c, const GemmArgs& a, bool& handled) {
  handled = false;
  if (!gemm_sm90_unsupported(ab, c, a).empty()) return "";
  const bool bf16 = ab == GemmType::BF16;
  CUtensorMap tmA, tmB;
  // A: (K, M) k-contiguous, or transposed (M, K); B: (N, K) n-contiguous, or transposed (K, N).
  const bool okA = a.transA ? encode(tmA, bf16, a.A, a.M, a.K, a.lda, a.batch, a.strideA)
                            : encode(tmA, bf16, a.A, a.K, a.M, a.lda, a.batch, a.strideA);
  const bool okB = a.transB ? encode(tmB, bf16, a.B, a.K, a.N, a.ldb, a.batch, a.strideB)
                            : encode(tmB, bf16, a.B, a.N, a.K, a.ldb, a.batch, a.strideB);
  if (!okA || !okB) return "";  // a layout the TMA unit refuses: the portable kernels run
  Params p{};
  p.batch = a.batch;
  p.M = a.M;
  p.N = a.N;
  p.K = a.K;
  p.tilesM = (a.M + kBM - 1) / kBM;
  p.tilesN = (a.N + kBN - 1) / kBN;
  p.numK = (a.K + kBK - 1) / kBK;
  p.C = a.C;
  p.ldc = a.ldc;
  p.sC = a.strideC;
  p.alpha = float(a.alpha);
  p.beta = float(a.beta);
  p.outF32 = c == GemmType::F32;
  const uintptr_t pair = c == GemmType::F32 ? 8 : 4;
  p.pairs = (reinterpret_cast<uintptr_t>(a.C) % pair) == 0 && a.ldc % 2 == 0 && (a.batch <= 1 || a.strideC % 2 == 0);
  p.batchA = a.batch > 1 && a.strideA != 0;
  p.batchB = a.batch > 1 && a.strideB != 0;
  const int layout = (a.transA ? 2 : 0) + (a.transB ? 1 : 0);
  switch (layout + (bf16 ? 4 : 0)) {
    case 0: return launch<false, false, false>(tmA, tmB, p, handled);
    case 1: return launch<false, false, true>(tmA, tmB, p, handled);
    case 2: return launch<false, true, false>(tmA, tmB, p, handled);
    case 3: return launch<false, true, true>(tmA, tmB, p, handled);
    case 4: return launch<true, false, false>(tmA, tmB, p, handled);
    case 5: return launch<true, false, true>(tmA, tmB, p, handled);
    case 6: return launch<true, true, false>(tmA, tmB, p, handled);
    default: return launch<true, true, true>(tmA, tmB, p, handled);
  }
}

}  // namespace cuda
}  // namespace kiln
