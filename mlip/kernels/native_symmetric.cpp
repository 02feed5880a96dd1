// Fused CPU kernels of MACE's symmetric contraction and its first and second derivatives.
//
// Per node n (element z = species[n]) and channel c the contraction is
//     out[n, M, c] = sum_(pairs q = (M, t)) V[z, q, c] * m_t(a[n, :, c])
// over monomials m_t of the node's features a: m_t = m_prefix(t) * a[last(t)] (degree one: m_t = a[last(t)]),
// listed by degree, so a monomial's prefix comes before it. V holds the weights folded with the basis
// (mlip/kernels/symmetric_native.py). The derivative kernels follow from that recursion:
//   input gradient   ga[n, i, c]  = d/da sum_t s_t m_t,             s_t = sum_(q = (M, t)) V[z, q, c] gbar[n, M, c]
//   weight gradient  gV[z, q, c] += gbar[n, M, c] m_t
// and, with a tangent u of a (second order, used by the double backward of force training), the directional
// derivatives q_t = u . grad m_t (q_t = q_prefix a_last + m_prefix u_last):
//   forward with q instead of m, weight gradient with q instead of m, and d/da sum_t s_t q_t (a Hessian-vector
//   product of the monomials).
// Shapes (row-major, contiguous): a, u, ga [N, D, C]; out, gbar [N, D_out, C]; V, gV [Z, Q, C]; species [N]
// int64. Tables (int32): prefix[T] (-1 at degree one), last[T], pair_m[Q], pair_t[Q].
// Threads split the nodes; the weight gradient sums per-thread copies at the end.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace {

struct Tables {
  int64_t D, Dout, T, Q, C, Z;
  const int32_t* prefix;
  const int32_t* last;
  const int32_t* pair_m;
  const int32_t* pair_t;
};

template <typename F>
void parallel(int64_t nthreads, F fn) {
  if (nthreads <= 1) {
    fn(0, 1);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < nthreads; ++t) pool.emplace_back(fn, t, nthreads);
  fn(0, nthreads);
  for (auto& th : pool) th.join();
}

// m[t, c] (and q[t, c] when u is given) for one node
template <typename T, int CC>
void monomials(const Tables& tb, const T* __restrict__ an, const T* __restrict__ un, T* __restrict__ m,
               T* __restrict__ q) {
  const int64_t C = CC > 0 ? CC : tb.C;
  for (int64_t t = 0; t < tb.T; ++t) {
    const int64_t p = tb.prefix[t];
    const T* __restrict__ al = an + tb.last[t] * C;
    T* __restrict__ mt = m + t * C;
    if (p < 0) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) mt[c] = al[c];
      if (un) {
        const T* __restrict__ ul = un + tb.last[t] * C;
        T* __restrict__ qt = q + t * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) qt[c] = ul[c];
      }
      continue;
    }
    const T* __restrict__ mp = m + p * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) mt[c] = mp[c] * al[c];
    if (un) {
      const T* __restrict__ ul = un + tb.last[t] * C;
      const T* __restrict__ qp = q + p * C;
      T* __restrict__ qt = q + t * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) qt[c] = qp[c] * al[c] + mp[c] * ul[c];
    }
  }
}

inline int64_t lo_of(int64_t n, int64_t part, int64_t parts) { return n * part / parts; }

// out[n, M] += sum_q V[z, q] * (u ? q_t : m_t)
template <typename T, int CC>
void k_forward(const Tables& tb, const T* a, const T* u, const T* V, const int64_t* species, int64_t N, T* out,
               int64_t part, int64_t parts) {
  const int64_t C = CC > 0 ? CC : tb.C;
  std::vector<T> m(tb.T * C), q(u ? tb.T * C : 0);
  for (int64_t n = lo_of(N, part, parts); n < lo_of(N, part + 1, parts); ++n) {
    monomials<T, CC>(tb, a + n * tb.D * C, u ? u + n * tb.D * C : nullptr, m.data(), q.data());
    const T* src = u ? q.data() : m.data();
    const T* Vz = V + species[n] * tb.Q * C;
    T* on = out + n * tb.Dout * C;
    for (int64_t k = 0; k < tb.Q; ++k) {
      const T* __restrict__ vk = Vz + k * C;
      const T* __restrict__ st = src + tb.pair_t[k] * C;
      T* __restrict__ o = on + tb.pair_m[k] * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) o[c] += vk[c] * st[c];
    }
  }
}

// gV[z, q] += gbar[n, M] * (u ? q_t : m_t); one copy of gV per thread (the caller sums them)
template <typename T, int CC>
void k_weight_grad(const Tables& tb, const T* a, const T* u, const T* gbar, const int64_t* species, int64_t N,
                   T* gV, int64_t part, int64_t parts) {
  const int64_t C = CC > 0 ? CC : tb.C;
  std::vector<T> m(tb.T * C), q(u ? tb.T * C : 0);
  T* mine = gV + part * tb.Z * tb.Q * C;
  for (int64_t n = lo_of(N, part, parts); n < lo_of(N, part + 1, parts); ++n) {
    monomials<T, CC>(tb, a + n * tb.D * C, u ? u + n * tb.D * C : nullptr, m.data(), q.data());
    const T* src = u ? q.data() : m.data();
    const T* gn = gbar + n * tb.Dout * C;
    T* gz = mine + species[n] * tb.Q * C;
    for (int64_t k = 0; k < tb.Q; ++k) {
      const T* __restrict__ gm = gn + tb.pair_m[k] * C;
      const T* __restrict__ st = src + tb.pair_t[k] * C;
      T* __restrict__ o = gz + k * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) o[c] += gm[c] * st[c];
    }
  }
}

// ga[n] = d/da sum_t s_t (u ? q_t : m_t),  s_t = sum_(q = (M, t)) V[z, q] gbar[n, M]  (reverse pass over t)
template <typename T, int CC>
void k_input_grad(const Tables& tb, const T* a, const T* u, const T* V, const T* gbar, const int64_t* species,
                  int64_t N, T* ga, int64_t part, int64_t parts) {
  const int64_t C = CC > 0 ? CC : tb.C;
  std::vector<T> m(tb.T * C), q(u ? tb.T * C : 0), dm(tb.T * C), dq(u ? tb.T * C : 0);
  for (int64_t n = lo_of(N, part, parts); n < lo_of(N, part + 1, parts); ++n) {
    const T* an = a + n * tb.D * C;
    const T* un = u ? u + n * tb.D * C : nullptr;
    monomials<T, CC>(tb, an, un, m.data(), q.data());
    // seeds: the adjoint of m (or of q, with u) is s
    T* seed = u ? dq.data() : dm.data();
    std::memset(dm.data(), 0, sizeof(T) * tb.T * C);
    if (u) std::memset(dq.data(), 0, sizeof(T) * tb.T * C);
    const T* Vz = V + species[n] * tb.Q * C;
    const T* gn = gbar + n * tb.Dout * C;
    for (int64_t k = 0; k < tb.Q; ++k) {
      const T* __restrict__ vk = Vz + k * C;
      const T* __restrict__ gm = gn + tb.pair_m[k] * C;
      T* __restrict__ st = seed + tb.pair_t[k] * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) st[c] += vk[c] * gm[c];
    }
    T* gan = ga + n * tb.D * C;
    for (int64_t t = tb.T - 1; t >= 0; --t) {
      const int64_t p = tb.prefix[t], l = tb.last[t];
      const T* __restrict__ al = an + l * C;
      T* __restrict__ gl = gan + l * C;
      T* __restrict__ dmt = dm.data() + t * C;
      if (p < 0) {  // m_t = a_l, q_t = u_l
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) gl[c] += dmt[c];
        continue;
      }
      const T* __restrict__ mp = m.data() + p * C;
      T* __restrict__ dmp = dm.data() + p * C;
      if (u) {  // q_t = q_p a_l + m_p u_l
        const T* __restrict__ ul = un + l * C;
        const T* __restrict__ qp = q.data() + p * C;
        T* __restrict__ dqt = dq.data() + t * C;
        T* __restrict__ dqp = dq.data() + p * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          dqp[c] += dqt[c] * al[c];
          dmp[c] += dqt[c] * ul[c];
          gl[c] += dqt[c] * qp[c];
        }
      }
      // m_t = m_p a_l
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        dmp[c] += dmt[c] * al[c];
        gl[c] += dmt[c] * mp[c];
      }
    }
  }
}

template <typename T, int CC>
void run_c(int64_t kind, const Tables& tb, const T* a, const T* u, const T* V, const T* gbar,
           const int64_t* species, int64_t N, T* out, int64_t nthreads) {
  switch (kind) {
    case 0:
      parallel(nthreads, [&](int64_t i, int64_t n) { k_forward<T, CC>(tb, a, u, V, species, N, out, i, n); });
      break;
    case 1:
      parallel(nthreads, [&](int64_t i, int64_t n) { k_weight_grad<T, CC>(tb, a, u, gbar, species, N, out, i, n); });
      break;
    default:
      parallel(nthreads, [&](int64_t i, int64_t n) { k_input_grad<T, CC>(tb, a, u, V, gbar, species, N, out, i, n); });
  }
}

// kind: 0 = forward (out [N, D_out, C]), 1 = weight gradient (out [nthreads, Z, Q, C], one copy per thread),
// 2 = input gradient (out [N, D, C]); u = nullptr for the first-order kernels. `out` is zero-filled by the caller,
// `nthreads` already decided by it (the weight gradient's output has one copy per thread).
template <typename T>
void run(int64_t kind, const int64_t* dims, const int32_t* itab, const T* a, const T* u, const T* V,
         const T* gbar, const int64_t* species, int64_t N, T* out, int64_t nthreads) {
  Tables tb;
  tb.D = dims[0], tb.Dout = dims[1], tb.T = dims[2], tb.Q = dims[3], tb.C = dims[4], tb.Z = dims[5];
  tb.prefix = itab;
  tb.last = itab + tb.T;
  tb.pair_m = itab + 2 * tb.T;
  tb.pair_t = itab + 2 * tb.T + tb.Q;
  switch (tb.C) {
    case 8: return run_c<T, 8>(kind, tb, a, u, V, gbar, species, N, out, nthreads);
    case 16: return run_c<T, 16>(kind, tb, a, u, V, gbar, species, N, out, nthreads);
    case 32: return run_c<T, 32>(kind, tb, a, u, V, gbar, species, N, out, nthreads);
    case 64: return run_c<T, 64>(kind, tb, a, u, V, gbar, species, N, out, nthreads);
    case 128: return run_c<T, 128>(kind, tb, a, u, V, gbar, species, N, out, nthreads);
    default: return run_c<T, 0>(kind, tb, a, u, V, gbar, species, N, out, nthreads);
  }
}

}  // namespace

extern "C" {
int mlip_sc_abi_version() { return 1; }

void mlip_sc_f32(int64_t kind, const int64_t* dims, const int32_t* itab, const float* a, const float* u,
                 const float* V, const float* gbar, const int64_t* species, int64_t N, float* out, int64_t nthreads) {
  run<float>(kind, dims, itab, a, u, V, gbar, species, N, out, nthreads);
}

void mlip_sc_f64(int64_t kind, const int64_t* dims, const int32_t* itab, const double* a, const double* u,
                 const double* V, const double* gbar, const int64_t* species, int64_t N, double* out,
                 int64_t nthreads) {
  run<double>(kind, dims, itab, a, u, V, gbar, species, N, out, nthreads);
}
}
