// Fused CPU loops of seqbench's selective scan (seqbench/models/layers/selective_scan.py).
//
// The pure-PyTorch scan makes every (slot, state, channel) decay 2^(A·log2 e · x) as a tensor and
// passes over it several times (exp, products, sums): on a CPU that is memory traffic, not
// arithmetic. These loops compute each decay once, in registers, and use it for every product
// that needs it; the work of a slot (or of a row, for the every-slot scan) stays in the L1/L2
// caches. Same arithmetic as the PyTorch path, in float32, within float rounding: a decay 2^x is
// 2^f by a degree-7 polynomial (f = x - round(x) in [-1/2, 1/2]; relative error ~5e-9, below
// float32 rounding) times 2^round(x), with x clamped to [-100, 127] (the PyTorch readout's floor,
// MIN_LOG2_WEIGHT: a weight below 2^-100 changes no float32 sum; 127 is never reached, A < 0).
// Work is split over rows on torch's intra-op thread count; the gradient of A is summed per fixed
// block of rows and the blocks are added in order, so every result is the same whatever the
// number of threads.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace {

constexpr float kMinLog2 = -100.0f;
constexpr float kMaxLog2 = 127.0f;
// Rows per block of the A-gradient partial sums (a fixed size: results do not depend on the
// number of threads); scan_cpu.py reads them from here.
constexpr int64_t kReadoutBlock = 16;
constexpr int64_t kEverySlotBlock = 8;

// 2^x, x clamped to [kMinLog2, kMaxLog2]: 2^f by its Taylor series to degree 7 (f = x - round(x)
// in [-1/2, 1/2]) times 2^round(x) built in the exponent bits. Plain arithmetic, so that the
// compiler vectorises the loops that call it.
inline float exp2_clamped(float x) {
  x = std::min(std::max(x, kMinLog2), kMaxLog2);
  const float r = (x + 12582912.0f) - 12582912.0f;  // round to nearest (|x| < 2^22)
  const float f = x - r;
  float p = 1.525273380405984e-05f;
  p = p * f + 1.5403530393381606e-04f;
  p = p * f + 1.3333558146428443e-03f;
  p = p * f + 9.618129107628477e-03f;
  p = p * f + 5.550410866482158e-02f;
  p = p * f + 2.402265069591007e-01f;
  p = p * f + 6.931471805599453e-01f;
  p = p * f + 1.0f;
  const int32_t bits = (static_cast<int32_t>(r) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// tau[s] = dt[s+1] + ... + dt[T] for s <= T (row-major (L, D) dt and tau), summed from T down.
inline void suffix_sums(const float* dt, int64_t T, int64_t D, float* tau) {
  float* tT = tau + T * D;
  std::fill(tT, tT + D, 0.0f);
  for (int64_t s = T - 1; s >= 0; --s) {
    const float* next = tau + (s + 1) * D;
    const float* dnext = dt + (s + 1) * D;
    float* ts = tau + s * D;
#pragma omp simd
    for (int64_t c = 0; c < D; ++c) ts[c] = next[c] + dnext[c];
  }
}

// body(lo, hi) over [0, count) split into at most ``threads`` contiguous ranges on std::threads
// (the caller passes torch's intra-op thread count; no OpenMP runtime beside torch's). The split
// does not change any result (rows are independent; the A-gradient is summed per fixed block).
template <typename Body>
void parallel_ranges(int64_t count, int64_t threads, const Body& body) {
  threads = std::min<int64_t>(std::max<int64_t>(threads, 1), count);
  if (threads <= 1) {
    if (count > 0) body(0, count);
    return;
  }
  const int64_t per = (count + threads - 1) / threads;
  std::exception_ptr error;
  std::mutex guard;
  auto run = [&](int64_t t) {
    try {
      body(t * per, std::min(count, (t + 1) * per));
    } catch (...) {
      std::lock_guard<std::mutex> lock(guard);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads && t * per < count; ++t) pool.emplace_back(run, t);
  run(0);
  for (auto& thread : pool) thread.join();
  if (error) std::rethrow_exception(error);
}


// sigmoid(x) from dt = softplus(x), the derivative that turns dL/d(dt) into dL/dx:
// 1 - e^(-dt), by its series below 1/2 (no cancellation for the small dt Mamba starts with;
// truncation below 1e-8 relative) and directly above.
inline float softplus_slope(float dt) {
  if (dt < 0.5f) {
    float p = 1.0f - dt * (1.0f / 8.0f);
    p = 1.0f - dt * (1.0f / 7.0f) * p;
    p = 1.0f - dt * (1.0f / 6.0f) * p;
    p = 1.0f - dt * (1.0f / 5.0f) * p;
    p = 1.0f - dt * (1.0f / 4.0f) * p;
    p = 1.0f - dt * (1.0f / 3.0f) * p;
    p = 1.0f - dt * 0.5f * p;
    return dt * p;
  }
  return 1.0f - exp2_clamped(-dt * 1.4426950408889634f);
}

}  // namespace

// The entry points: plain C, called through ctypes with the data pointers of contiguous float32
// tensors (int64 for ``last``) that the caller has allocated and checked; ``pp`` receives the
// A-gradient of each block of kReadoutBlock (readout) or kEverySlotBlock (every slot) rows, to
// be summed in order by the caller (zeroed by the caller). The caller also passes the threads.

// Readout slot, forward, per row with readout slot T = last[r]:
//   y[c] = sum_{s <= T} dt[s, c] u[s, c] sum_n 2^(a2[n, c] tau[s, c]) B[s, n] C_last[n] + D[c] u[T, c]
// with tau[s] = dt[s+1] + ... + dt[T] (summed from T down, as the PyTorch path's suffix sums).
// u, dt (rows, L, D); B (rows, L, N); C_last (rows, N); last (rows,) int64; a2 (N, D); D (D,).
extern "C" void seqbench_readout_forward(const float* up, const float* dp, const float* bp,
                                         const float* cp, const int64_t* lp, const float* a2p,
                                         const float* skip, float* yp, int64_t rows, int64_t L,
                                         int64_t D, int64_t N, int64_t threads) {
  parallel_ranges(rows, threads, [&](int64_t lo, int64_t hi) {
    std::vector<float> tau(L * D), kernel(D);
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t T = lp[r];  // in [0, L), checked by the caller
      const float* ur = up + r * L * D;
      const float* dr = dp + r * L * D;
      suffix_sums(dr, T, D, tau.data());
      float* yr = yp + r * D;
      std::fill(yr, yr + D, 0.0f);
      for (int64_t s = 0; s <= T; ++s) {
        const float* ts = tau.data() + s * D;
        std::fill(kernel.begin(), kernel.end(), 0.0f);
        for (int64_t n = 0; n < N; ++n) {
          const float* a2n = a2p + n * D;
          const float beta = bp[(r * L + s) * N + n] * cp[r * N + n];
          float* k = kernel.data();
#pragma omp simd
          for (int64_t c = 0; c < D; ++c) k[c] += exp2_clamped(a2n[c] * ts[c]) * beta;
        }
        const float* us = ur + s * D;
        const float* ds = dr + s * D;
#pragma omp simd
        for (int64_t c = 0; c < D; ++c) yr[c] += ds[c] * us[c] * kernel[c];
      }
      const float* uT = ur + T * D;
#pragma omp simd
      for (int64_t c = 0; c < D; ++c) yr[c] += skip[c] * uT[c];
    }
  });
}

// Readout slot, backward, per row (g = grad_y[r], w_s = g dt_s u_s, E = 2^(a2 tau_s),
// beta_s = B_s C_last): dL/d(dt u)_s = g K_s with K_s = sum_n E beta_s; dL/dbeta_s[n] =
// sum_c w_s E; dL/dtau_s = w_s sum_n A E beta_s, which reaches dt_r for every r > s;
// dL/dA = sum_s tau_s w_s E beta_s; the D u_T term gives g D to u_T. Slots after T get nothing.
// dL/d(dt) is returned times softplus' (as dL/d(pre + bias)) when ``softplus``.
// Returns grad_u, grad_pre (rows, L, D), grad_B (rows, L, N), grad_C_last (rows, N),
// grad_A (N, D).
extern "C" void seqbench_readout_backward(const float* up, const float* dp, const float* bp,
                                          const float* cp, const int64_t* lp, const float* a2p,
                                          const float* ap, const float* skip, const float* gp,
                                          int32_t softplus, float* gup, float* gdp, float* gbp,
                                          float* gcp, float* pp, int64_t rows, int64_t L,
                                          int64_t D, int64_t N, int64_t threads) {
  const int64_t blocks = (rows + kReadoutBlock - 1) / kReadoutBlock;
  parallel_ranges(blocks, threads, [&](int64_t block_lo, int64_t block_hi) {
    std::vector<float> tau(L * D), w(D), tw(D), kernel(D), jsum(D), carry(D);
    for (int64_t block = block_lo; block < block_hi; ++block) {
      float* ga = pp + block * N * D;
      const int64_t row_hi = std::min(rows, (block + 1) * kReadoutBlock);
      for (int64_t r = block * kReadoutBlock; r < row_hi; ++r) {
        const int64_t T = lp[r];  // in [0, L), checked by the caller
        const float* ur = up + r * L * D;
        const float* dr = dp + r * L * D;
        const float* g = gp + r * D;
        const float* cr = cp + r * N;
        float* gcr = gcp + r * N;
        std::fill(gcr, gcr + N, 0.0f);
        // slots after T: no gradient
        std::fill(gup + (r * L + T + 1) * D, gup + (r + 1) * L * D, 0.0f);
        std::fill(gdp + (r * L + T + 1) * D, gdp + (r + 1) * L * D, 0.0f);
        std::fill(gbp + (r * L + T + 1) * N, gbp + (r + 1) * L * N, 0.0f);
        suffix_sums(dr, T, D, tau.data());
        std::fill(carry.begin(), carry.end(), 0.0f);  // sum of dL/dtau_s over s < this slot
        for (int64_t s = 0; s <= T; ++s) {
          const float* ts = tau.data() + s * D;
          const float* us = ur + s * D;
          const float* ds = dr + s * D;
          const float* bs = bp + (r * L + s) * N;
          float* gbs = gbp + (r * L + s) * N;
#pragma omp simd
          for (int64_t c = 0; c < D; ++c) {
            w[c] = g[c] * ds[c] * us[c];
            tw[c] = ts[c] * w[c];
            kernel[c] = 0.0f;
            jsum[c] = 0.0f;
          }
          for (int64_t n = 0; n < N; ++n) {
            const float* a2n = a2p + n * D;
            const float* an = ap + n * D;
            float* gan = ga + n * D;
            const float beta = bs[n] * cr[n];
            float gbeta = 0.0f;
#pragma omp simd reduction(+ : gbeta)
            for (int64_t c = 0; c < D; ++c) {
              const float e = exp2_clamped(a2n[c] * ts[c]);
              gbeta += w[c] * e;
              const float eb = e * beta;
              kernel[c] += eb;
              jsum[c] += an[c] * eb;
              gan[c] += tw[c] * eb;
            }
            gbs[n] = gbeta * cr[n];
            gcr[n] += gbeta * bs[n];
          }
          float* gus = gup + (r * L + s) * D;
          float* gds = gdp + (r * L + s) * D;
#pragma omp simd
          for (int64_t c = 0; c < D; ++c) {
            const float gv = g[c] * kernel[c];  // dL/d(dt u)_s
            const float gdt = carry[c] + gv * us[c];
            gds[c] = softplus ? gdt * softplus_slope(ds[c]) : gdt;
            gus[c] = gv * ds[c];
            carry[c] += jsum[c] * w[c];
          }
        }
        float* guT = gup + (r * L + T) * D;
#pragma omp simd
        for (int64_t c = 0; c < D; ++c) guT[c] += g[c] * skip[c];
      }
    }
  });
}

// Every slot, forward, per row: state[n, c] <- 2^(a2[n, c] dt[t, c]) state + B[t, n] dt u;
// y[t, c] = sum_n C[t, n] state[n, c] + D[c] u[t, c]. u, dt (rows, L, D); B, C (rows, L, N).
extern "C" void seqbench_every_slot_forward(const float* up, const float* dp, const float* bp,
                                            const float* cp, const float* a2p, const float* skip,
                                            float* yp, int64_t rows, int64_t L, int64_t D,
                                            int64_t N, int64_t threads) {
  parallel_ranges(rows, threads, [&](int64_t lo, int64_t hi) {
    std::vector<float> state(N * D), v(D);
    for (int64_t r = lo; r < hi; ++r) {
      std::fill(state.begin(), state.end(), 0.0f);
      for (int64_t t = 0; t < L; ++t) {
        const int64_t idx = (r * L + t);
        const float* ut = up + idx * D;
        const float* dtt = dp + idx * D;
        float* yt = yp + idx * D;
#pragma omp simd
        for (int64_t c = 0; c < D; ++c) {
          v[c] = dtt[c] * ut[c];
          yt[c] = 0.0f;
        }
        for (int64_t n = 0; n < N; ++n) {
          const float* a2n = a2p + n * D;
          float* sn = state.data() + n * D;
          const float b = bp[idx * N + n], c_ = cp[idx * N + n];
#pragma omp simd
          for (int64_t c = 0; c < D; ++c) {
            sn[c] = exp2_clamped(a2n[c] * dtt[c]) * sn[c] + b * v[c];
            yt[c] += c_ * sn[c];
          }
        }
#pragma omp simd
        for (int64_t c = 0; c < D; ++c) yt[c] += skip[c] * ut[c];
      }
    }
  });
}

// Every slot, backward, per row: the states again (kept for the row), then the adjoint
// G_t = C_t (x) g_t + a_{t+1} G_{t+1} walked back through time: dL/d(dt u)_t = sum_n G_t B_t,
// dL/dB_t = sum_c G_t (dt u)_t, dL/dC_t = sum_c g_t s_t, and with q_t = G_t a_t s_{t-1}
// dL/d(dt)_t = sum_n A q_t + dL/d(dt u)_t u_t, dL/dA = sum_t dt_t q_t. dL/d(dt) is returned
// times softplus' when ``softplus``. Returns grad_u, grad_pre (rows, L, D), grad_B, grad_C
// (rows, L, N) and grad_A (N, D).
extern "C" void seqbench_every_slot_backward(const float* up, const float* dp, const float* bp,
                                             const float* cp, const float* a2p, const float* ap,
                                             const float* skip, const float* gp, int32_t softplus,
                                             float* gup, float* gdp, float* gbp, float* gcp,
                                             float* pp, int64_t rows, int64_t L, int64_t D,
                                             int64_t N, int64_t threads) {
  const int64_t blocks = (rows + kEverySlotBlock - 1) / kEverySlotBlock;
  parallel_ranges(blocks, threads, [&](int64_t block_lo, int64_t block_hi) {
    std::vector<float> states(L * N * D);  // s_t of one row
    std::vector<float> adjoint(N * D), decay(N * D), next_decay(N * D), v(D), gv(D), gdt(D);
    for (int64_t block = block_lo; block < block_hi; ++block) {
      float* ga = pp + block * N * D;
      const int64_t row_hi = std::min(rows, (block + 1) * kEverySlotBlock);
      for (int64_t r = block * kEverySlotBlock; r < row_hi; ++r) {
        // forward again, keeping every state
        for (int64_t t = 0; t < L; ++t) {
          const int64_t idx = r * L + t;
          const float* ut = up + idx * D;
          const float* dtt = dp + idx * D;
#pragma omp simd
          for (int64_t c = 0; c < D; ++c) v[c] = dtt[c] * ut[c];
          for (int64_t n = 0; n < N; ++n) {
            const float* a2n = a2p + n * D;
            float* sn = states.data() + (t * N + n) * D;
            const float b = bp[idx * N + n];
            if (t == 0) {
#pragma omp simd
              for (int64_t c = 0; c < D; ++c) sn[c] = b * v[c];
            } else {
              const float* prev = sn - N * D;
#pragma omp simd
              for (int64_t c = 0; c < D; ++c)
                sn[c] = exp2_clamped(a2n[c] * dtt[c]) * prev[c] + b * v[c];
            }
          }
        }
        // backward through time
        for (int64_t t = L - 1; t >= 0; --t) {
          const int64_t idx = r * L + t;
          const float* ut = up + idx * D;
          const float* dtt = dp + idx * D;
          const float* gt = gp + idx * D;
          const bool last = (t == L - 1);
#pragma omp simd
          for (int64_t c = 0; c < D; ++c) {
            v[c] = dtt[c] * ut[c];
            gv[c] = 0.0f;
            gdt[c] = 0.0f;
          }
          for (int64_t n = 0; n < N; ++n) {
            const float* a2n = a2p + n * D;
            const float* an = ap + n * D;
            float* gn = adjoint.data() + n * D;
            float* dn = decay.data() + n * D;
            const float* nextn = next_decay.data() + n * D;
            const float* sn = states.data() + (t * N + n) * D;
            float* gan = ga + n * D;
            const float b = bp[idx * N + n], c_ = cp[idx * N + n];
            float grad_c = 0.0f, grad_b = 0.0f;
#pragma omp simd reduction(+ : grad_c, grad_b)
            for (int64_t c = 0; c < D; ++c) {
              // G_t = C_t g_t + a_{t+1} G_{t+1}
              const float g = c_ * gt[c] + (last ? 0.0f : nextn[c] * gn[c]);
              gn[c] = g;
              grad_c += gt[c] * sn[c];
              grad_b += g * v[c];
              gv[c] += g * b;
              dn[c] = exp2_clamped(a2n[c] * dtt[c]);
            }
            if (t > 0) {
              const float* prev = sn - N * D;
#pragma omp simd
              for (int64_t c = 0; c < D; ++c) {
                const float q = gn[c] * dn[c] * prev[c];  // G_t a_t s_{t-1}
                gdt[c] += an[c] * q;
                gan[c] += dtt[c] * q;
              }
            }
            gbp[idx * N + n] = grad_b;
            gcp[idx * N + n] = grad_c;
          }
          float* gut = gup + idx * D;
          float* gpt = gdp + idx * D;
#pragma omp simd
          for (int64_t c = 0; c < D; ++c) {
            const float total = gdt[c] + gv[c] * ut[c];
            gpt[c] = softplus ? total * softplus_slope(dtt[c]) : total;
            gut[c] = gv[c] * dtt[c] + gt[c] * skip[c];
          }
          std::swap(decay, next_decay);
        }
      }
    }
  });
}
