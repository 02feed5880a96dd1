// Fused CPU kernels of the channel-wise (uvu) tensor product, gather and scatter included.
//
// The product is the 4-linear form
//     T(x, y, w, g) = sum_e sum_(i,j,k) C[i,j,k] * sum_c x[s(e),i,c] y[e,j] w[e,p(k),c] g[r(e),k,c]
// (s = senders, r = receivers, p(k) = the path of output component k, C the sparse CG table with sqrt(2l3+1)
// folded in). The forward product is dT/dg; the backward products are dT/dx, dT/dy, dT/dw, so each derivative of
// each of them is again one of these four "slots" (mlip/kernels/channelwise_native.py builds autograd on that).
//
// Shapes (row-major, contiguous): x [Nx, D1, C], y [E, D2], w [E, P, C], g [Ng, K, C], senders/receivers [E]
// int64. Tables (int32): ai[n] = k(n) * MAXI + i(n) - istart(k(n)), aj[n] = j(n) for each nonzero n, and per
// output component k: kpath[k], kistart[k], kilen[k] (the block of x components path p(k) reads).
//
// Per edge the CG table is first contracted with y: A[k, ii] = sum_(n: k(n)=k) C_n * y[e, j(n)], a [K, MAXI]
// array; the per-channel loops are then short dense loops over ii with an inner loop over contiguous channels.
//
// Work is split over threads by node ranges for the two scatters (dT/dg into receivers, dT/dx into senders: each
// thread takes the edges whose target node is its own, so no two threads write one element) and by edge ranges
// for the edge-level slots (dT/dw, dT/dy).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace {

struct Tables {
  int64_t D1, D2, K, P, C, MAXI, nnz;
  const int32_t* ai;
  const int32_t* aj;
  const int32_t* kpath;
  const int32_t* kistart;
  const int32_t* kilen;
};

template <typename T>
void contract_y(const Tables& t, const T* cval, const T* ye, T* A) {
  std::memset(A, 0, sizeof(T) * t.K * t.MAXI);
  for (int64_t n = 0; n < t.nnz; ++n) A[t.ai[n]] += cval[n] * ye[t.aj[n]];
}

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

// The channel loops below have a compile-time trip count CC for the common widths (CC = 0: runtime t.C), so that
// they vectorise fully; `#pragma omp simd` (-fopenmp-simd, no OpenMP runtime) allows the vectorised reductions.
// Thread `part` of `parts` handles the edges whose scatter target (receiver for dT/dg, sender for dT/dx) falls in
// its share of nodes, or its share of the edges for the edge-level slots, so no two threads write one element.

inline bool mine(int64_t node, int64_t n_nodes, int64_t part, int64_t parts) {
  return parts == 1 || (node * parts) / n_nodes == part;
}

// acc[c] = sum_(ii < len) a[ii] * xb[ii * C + c]: one output component from its block of x components
template <typename T, int CC>
inline void combine_rows(const T* a, const T* __restrict__ xb, int64_t len, int64_t C_rt, T* __restrict__ acc) {
  const int64_t C = CC > 0 ? CC : C_rt;
  const T a0 = a[0];
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) acc[c] = a0 * xb[c];
  for (int64_t ii = 1; ii < len; ++ii) {
    const T av = a[ii];
    const T* __restrict__ xr = xb + ii * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) acc[c] += av * xr[c];
  }
}

// out[r(e), k, c] += w[e, p(k), c] * sum_ii A[k, ii] x[s(e), istart(k) + ii, c]        (dT/dg)
template <typename T, int CC>
void slot_g(const Tables& t, const T* cval, const T* __restrict__ x, const T* __restrict__ y,
            const T* __restrict__ w, const int64_t* snd, const int64_t* rcv, int64_t E, int64_t n_out,
            T* __restrict__ out, int64_t part, int64_t parts) {
  const int64_t C = CC > 0 ? CC : t.C;
  std::vector<T> A(t.K * t.MAXI), accv(C);
  T* __restrict__ acc = accv.data();
  for (int64_t e = 0; e < E; ++e) {
    if (!mine(rcv[e], n_out, part, parts)) continue;
    contract_y(t, cval, y + e * t.D2, A.data());
    const T* xs = x + snd[e] * t.D1 * C;
    const T* we = w + e * t.P * C;
    T* o = out + rcv[e] * t.K * C;
    for (int64_t k = 0; k < t.K; ++k) {
      const T* a = A.data() + k * t.MAXI;
      combine_rows<T, CC>(a, xs + t.kistart[k] * C, t.kilen[k], C, acc);
      const T* __restrict__ wp = we + t.kpath[k] * C;
      T* __restrict__ ok = o + k * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) ok[c] += acc[c] * wp[c];
    }
  }
}

// gx[s(e), istart(k) + ii, c] += A[k, ii] * w[e, p(k), c] * g[r(e), k, c]               (dT/dx)
template <typename T, int CC>
void slot_x(const Tables& t, const T* cval, const T* __restrict__ y, const T* __restrict__ w,
            const T* __restrict__ g, const int64_t* snd, const int64_t* rcv, int64_t E, int64_t n_out,
            T* __restrict__ gx, int64_t part, int64_t parts) {
  const int64_t C = CC > 0 ? CC : t.C;
  std::vector<T> A(t.K * t.MAXI), tmpv(C);
  T* __restrict__ tmp = tmpv.data();
  for (int64_t e = 0; e < E; ++e) {
    if (!mine(snd[e], n_out, part, parts)) continue;
    contract_y(t, cval, y + e * t.D2, A.data());
    T* xs = gx + snd[e] * t.D1 * C;
    const T* we = w + e * t.P * C;
    const T* gr = g + rcv[e] * t.K * C;
    for (int64_t k = 0; k < t.K; ++k) {
      const T* a = A.data() + k * t.MAXI;
      const T* __restrict__ wp = we + t.kpath[k] * C;
      const T* __restrict__ gk = gr + k * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) tmp[c] = wp[c] * gk[c];
      T* xb = xs + t.kistart[k] * C;
      const int64_t len = t.kilen[k];
      for (int64_t ii = 0; ii < len; ++ii) {
        const T av = a[ii];
        T* __restrict__ xr = xb + ii * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) xr[c] += av * tmp[c];
      }
    }
  }
}

// gw[e, p(k), c] += g[r(e), k, c] * sum_ii A[k, ii] x[s(e), istart(k) + ii, c]          (dT/dw)
template <typename T, int CC>
void slot_w(const Tables& t, const T* cval, const T* __restrict__ x, const T* __restrict__ y,
            const T* __restrict__ g, const int64_t* snd, const int64_t* rcv, int64_t E, T* __restrict__ gw,
            int64_t part, int64_t parts) {
  const int64_t C = CC > 0 ? CC : t.C;
  std::vector<T> A(t.K * t.MAXI), accv(C);
  T* __restrict__ acc = accv.data();
  const int64_t e0 = E * part / parts, e1 = E * (part + 1) / parts;
  for (int64_t e = e0; e < e1; ++e) {
    contract_y(t, cval, y + e * t.D2, A.data());
    const T* xs = x + snd[e] * t.D1 * C;
    const T* gr = g + rcv[e] * t.K * C;
    T* we = gw + e * t.P * C;
    for (int64_t k = 0; k < t.K; ++k) {
      const T* a = A.data() + k * t.MAXI;
      combine_rows<T, CC>(a, xs + t.kistart[k] * C, t.kilen[k], C, acc);
      const T* __restrict__ gk = gr + k * C;
      T* __restrict__ wp = we + t.kpath[k] * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) wp[c] += acc[c] * gk[c];
    }
  }
}

// gy[e, j(n)] += C_n * B[k(n), ii(n)],  B[k, ii] = sum_c x[s(e), istart(k) + ii, c] w[e, p(k), c] g[r(e), k, c]
template <typename T, int CC>
void slot_y(const Tables& t, const T* cval, const T* __restrict__ x, const T* __restrict__ w,
            const T* __restrict__ g, const int64_t* snd, const int64_t* rcv, int64_t E, T* __restrict__ gy,
            int64_t part, int64_t parts) {
  const int64_t C = CC > 0 ? CC : t.C;
  std::vector<T> B(t.K * t.MAXI), tmpv(C);
  T* __restrict__ tmp = tmpv.data();
  const int64_t e0 = E * part / parts, e1 = E * (part + 1) / parts;
  for (int64_t e = e0; e < e1; ++e) {
    const T* xs = x + snd[e] * t.D1 * C;
    const T* we = w + e * t.P * C;
    const T* gr = g + rcv[e] * t.K * C;
    for (int64_t k = 0; k < t.K; ++k) {
      const T* __restrict__ wp = we + t.kpath[k] * C;
      const T* __restrict__ gk = gr + k * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) tmp[c] = wp[c] * gk[c];
      const T* xb = xs + t.kistart[k] * C;
      const int64_t len = t.kilen[k];
      for (int64_t ii = 0; ii < len; ++ii) {
        const T* __restrict__ xr = xb + ii * C;
        T s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < C; ++c) s += xr[c] * tmp[c];
        B[k * t.MAXI + ii] = s;
      }
    }
    T* ge = gy + e * t.D2;
    for (int64_t n = 0; n < t.nnz; ++n) ge[t.aj[n]] += cval[n] * B[t.ai[n]];
  }
}

Tables make_tables(const int64_t* dims, const int32_t* itab) {
  Tables t;
  t.D1 = dims[0], t.D2 = dims[1], t.K = dims[2], t.P = dims[3], t.C = dims[4], t.MAXI = dims[5], t.nnz = dims[6];
  t.ai = itab;
  t.aj = itab + t.nnz;
  t.kpath = itab + 2 * t.nnz;
  t.kistart = t.kpath + t.K;
  t.kilen = t.kistart + t.K;
  return t;
}

template <typename T, int CC>
void run_c(int64_t slot, const Tables& t, const T* cval, const T* x, const T* y, const T* w, const T* g,
           const int64_t* snd, const int64_t* rcv, int64_t E, int64_t n_out, T* out, int64_t nthreads) {
  switch (slot) {
    case 0:
      parallel(nthreads, [&](int64_t i, int64_t n) { slot_g<T, CC>(t, cval, x, y, w, snd, rcv, E, n_out, out, i, n); });
      break;
    case 1:
      parallel(nthreads, [&](int64_t i, int64_t n) { slot_x<T, CC>(t, cval, y, w, g, snd, rcv, E, n_out, out, i, n); });
      break;
    case 2:
      parallel(nthreads, [&](int64_t i, int64_t n) { slot_y<T, CC>(t, cval, x, w, g, snd, rcv, E, out, i, n); });
      break;
    default:
      parallel(nthreads, [&](int64_t i, int64_t n) { slot_w<T, CC>(t, cval, x, y, g, snd, rcv, E, out, i, n); });
  }
}

// slot: 0 = g (forward product), 1 = x, 2 = y, 3 = w. `out` ([n_out, ...]) is zero-filled by the caller.
template <typename T>
void run(int64_t slot, const int64_t* dims, const int32_t* itab, const T* cval, const T* x, const T* y,
         const T* w, const T* g, const int64_t* snd, const int64_t* rcv, int64_t E, int64_t n_out, T* out,
         int64_t nthreads) {
  const Tables t = make_tables(dims, itab);
  // threads only when each gets at least a few hundred edges
  nthreads = std::max<int64_t>(1, std::min(nthreads, E / 256));
  switch (t.C) {
    case 8: return run_c<T, 8>(slot, t, cval, x, y, w, g, snd, rcv, E, n_out, out, nthreads);
    case 16: return run_c<T, 16>(slot, t, cval, x, y, w, g, snd, rcv, E, n_out, out, nthreads);
    case 32: return run_c<T, 32>(slot, t, cval, x, y, w, g, snd, rcv, E, n_out, out, nthreads);
    case 64: return run_c<T, 64>(slot, t, cval, x, y, w, g, snd, rcv, E, n_out, out, nthreads);
    case 128: return run_c<T, 128>(slot, t, cval, x, y, w, g, snd, rcv, E, n_out, out, nthreads);
    default: return run_c<T, 0>(slot, t, cval, x, y, w, g, snd, rcv, E, n_out, out, nthreads);
  }
}

}  // namespace

extern "C" {
int mlip_cw_abi_version() { return 2; }

void mlip_cw_f32(int64_t slot, const int64_t* dims, const int32_t* itab, const float* cval, const float* x,
                 const float* y, const float* w, const float* g, const int64_t* snd, const int64_t* rcv, int64_t E,
                 int64_t n_out, float* out, int64_t nthreads) {
  run<float>(slot, dims, itab, cval, x, y, w, g, snd, rcv, E, n_out, out, nthreads);
}

void mlip_cw_f64(int64_t slot, const int64_t* dims, const int32_t* itab, const double* cval, const double* x,
                 const double* y, const double* w, const double* g, const int64_t* snd, const int64_t* rcv,
                 int64_t E, int64_t n_out, double* out, int64_t nthreads) {
  run<double>(slot, dims, itab, cval, x, y, w, g, snd, rcv, E, n_out, out, nthreads);
}
}
