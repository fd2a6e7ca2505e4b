/* HEE's Euler loop in C (method parameter ``inner_loop: compiled``; issue 21).
 *
 * Built at run time by ebm_bench/samplers/hee_compiled.py (gcc -O3 -march=native
 * -ffast-math, loaded with ctypes); see that module for the what and why. This file is
 * the loop of ebm_bench/samplers/hee_fused.py::run_fused written out over the batch:
 * the state is held unit-major, A[i * Bp + c] (unit i, chain c), so every operation is a
 * loop over chains that the compiler vectorises, and the chains are processed in chunks
 * of CB = 64 whose working set (f(x), eta, the score, the bottom-up error) stays in cache.
 * Per Euler step and chunk, in the order of the eager loop (ebm_bench/methods/hee.py::
 * HEE.simulate): f(x), eta_l = W_l f(x_{l+1}) + b_l, A'(eta) (interneurons or closed
 * form), the score eta - 2 Lambda x + f'(x) W^T (x - A'), the local learning signal
 * summed over the chains, the x / v move, the clamp of x_0, the interneurons' move on
 * this step's eta, the time average; after all chunks the learning update of W, b and
 * Lambda (all chunks read the step's start parameters, as the eager loop's batch does).
 *
 * Gaussian noise: Philox4x32-10 (Salmon, Moraes, Dror & Shaw 2011, "Parallel random
 * numbers: as easy as 1, 2, 3", SC'11; the generator of cuRAND and JAX), counter =
 * (chunk * 16 + lane, unit | draw << 24, step low, step high), key = 64 bits drawn by the
 * caller from the method's torch.Generator, then Box-Muller on two 24-bit uniforms (the
 * transform torch's CPU normal_ uses). Counter-based: every number depends only on
 * (key, step, draw, unit, chain), never on the chunking or on what else was drawn.
 * With ``noise`` non-NULL the numbers are read from it instead (tests: the eager loop's
 * own draws, layout [step][slot][unit][chain]).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CB 64   /* chains per chunk: 4 lanes x 16 Philox blocks */
#define NB 16   /* Philox blocks per chunk; block q gives chains q, q+16, q+32, q+48 */

#if defined(__AVX512F__)
#include <immintrin.h>
typedef __m512i u32v;
#define V_SET1(a) _mm512_set1_epi32((int)(a))
#define V_LANE() _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#define V_ADD(a, b) _mm512_add_epi32(a, b)
#define V_XOR(a, b) _mm512_xor_si512(a, b)
/* 32 x 32 -> 64-bit products of 16 lanes: even lanes by one vpmuludq, odd lanes by another */
static inline void mulhilo(u32v x, u32v M, u32v *hi, u32v *lo)
{
    u32v pe = _mm512_mul_epu32(x, M), po = _mm512_mul_epu32(_mm512_srli_epi64(x, 32), M);
    *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 32), po);
    *lo = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
}
#else
typedef uint32_t u32v __attribute__((vector_size(64)));
typedef uint64_t u64v __attribute__((vector_size(128)));
#define V_SET1(a) ((u32v){0} + (uint32_t)(a))
#define V_LANE() ((u32v){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
#define V_ADD(a, b) ((a) + (b))
#define V_XOR(a, b) ((a) ^ (b))
static inline void mulhilo(u32v x, u32v M, u32v *hi, u32v *lo)
{
    u64v p = __builtin_convertvector(x, u64v) * __builtin_convertvector(M, u64v);
    *hi = __builtin_convertvector(p >> 32, u32v);
    *lo = x * M;
}
#endif

/* 64 standard normals into out[0..63]: Philox4x32-10 block q (q < 16) of counter
 * (chunk * 16 + q, c1, step low, step high) gives out[q], out[q + 16], out[q + 32], out[q + 48]
 * by Box-Muller on (x0, x1) and (x2, x3). */
static void philox_normals(uint32_t key0, uint32_t key1, uint32_t c1, uint64_t step, uint32_t chunk,
                           float *restrict out)
{
    u32v x0 = V_ADD(V_SET1(chunk * NB), V_LANE()), x1 = V_SET1(c1);
    u32v x2 = V_SET1((uint32_t)step), x3 = V_SET1((uint32_t)(step >> 32));
    const u32v M0 = V_SET1(0xD2511F53u), M1 = V_SET1(0xCD9E8D57u);
    uint32_t k0 = key0, k1 = key1;
    for (int r = 0; r < 10; r++) {
        u32v h0, l0, h1, l1;
        mulhilo(x0, M0, &h0, &l0);
        mulhilo(x2, M1, &h1, &l1);
        x0 = V_XOR(V_XOR(h1, x1), V_SET1(k0));
        x2 = V_XOR(V_XOR(h0, x3), V_SET1(k1));
        x1 = l1;
        x3 = l0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    uint32_t w[4][NB];
    memcpy(w[0], &x0, sizeof w[0]); memcpy(w[1], &x1, sizeof w[1]);
    memcpy(w[2], &x2, sizeof w[2]); memcpy(w[3], &x3, sizeof w[3]);
    const float two24 = 5.9604644775390625e-08f; /* 2^-24 */
    const float two_pi = 6.283185307179586f;
    float r1[NB], r2[NB], t1[NB], t2[NB];
#pragma omp simd
    for (int q = 0; q < NB; q++) {  /* u1 in (0, 1), so the log is finite; angle 2 pi u2, u2 in [0, 1) */
        r1[q] = sqrtf(-2.0f * logf(((float)(w[0][q] >> 8) + 0.5f) * two24));
        r2[q] = sqrtf(-2.0f * logf(((float)(w[2][q] >> 8) + 0.5f) * two24));
        t1[q] = (float)(w[1][q] >> 8) * (two24 * two_pi);
        t2[q] = (float)(w[3][q] >> 8) * (two24 * two_pi);
    }
#pragma omp simd
    for (int q = 0; q < NB; q++) {
        out[q] = r1[q] * cosf(t1[q]);
        out[q + 2 * NB] = r2[q] * cosf(t2[q]);
    }
#pragma omp simd
    for (int q = 0; q < NB; q++) {
        out[q + NB] = r1[q] * sinf(t1[q]);
        out[q + 3 * NB] = r2[q] * sinf(t2[q]);
    }
}

/* one Philox block on an arbitrary counter (tests: known-answer vectors) */
void hee_philox4x32_10(const uint32_t *ctr, const uint32_t *key, uint32_t *out)
{
    uint32_t x0 = ctr[0], x1 = ctr[1], x2 = ctr[2], x3 = ctr[3], k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * x0, p1 = (uint64_t)0xCD9E8D57u * x2;
        uint32_t y0 = (uint32_t)(p1 >> 32) ^ x1 ^ k0, y2 = (uint32_t)(p0 >> 32) ^ x3 ^ k1;
        x1 = (uint32_t)p1; x3 = (uint32_t)p0; x0 = y0; x2 = y2;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    out[0] = x0; out[1] = x1; out[2] = x2; out[3] = x3;
}

/* fill ``out`` (n_units x Bp, unit-major) with draw ``draw`` of step ``step`` (tests of the law) */
void hee_normals(uint64_t key, int64_t step, int draw, int n_units, int Bp, float *out)
{
    float buf[CB];
    for (int i = 0; i < n_units; i++)
        for (int c = 0; c < Bp; c += CB) {
            philox_normals((uint32_t)key, (uint32_t)(key >> 32), (uint32_t)i | ((uint32_t)draw << 24),
                           (uint64_t)step, (uint32_t)(c / CB), buf);
            memcpy(out + (size_t)i * Bp + c, buf, sizeof buf);
        }
}

/* interneurons' move U' = cu U + ce eta + cn n for the configured integrator (hee_fused.u_coeffs) */
static void u_coeffs(int N, const float *lam, int integ, double dt, double tau_u, float *cu, float *ce, float *cn)
{
    for (int i = 0; i < N; i++) {
        double l2 = 2.0 * (double)lam[i];
        if (integ == 1) {        /* exact Ornstein-Uhlenbeck step */
            double a = exp(-l2 * dt / tau_u);
            cu[i] = (float)a; ce[i] = (float)((1.0 - a) / l2); cn[i] = (float)sqrt((1.0 - a * a) / l2);
        } else if (integ == 2) { /* preconditioned Euler */
            double k = 1.0 / l2;
            cu[i] = (float)(1.0 - dt / tau_u); ce[i] = (float)(dt / tau_u * k); cn[i] = (float)(sqrt(2.0 * dt / tau_u) * sqrt(k));
        } else {                 /* plain Euler */
            cu[i] = (float)(1.0 - l2 * dt / tau_u); ce[i] = (float)(dt / tau_u); cn[i] = (float)sqrt(2.0 * dt / tau_u);
        }
    }
}

typedef float f32x16 __attribute__((vector_size(64)));

static inline f32x16 load16(const float *p)
{
    f32x16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* dW_l[i][j] = sum_c err_l[i][c] f_{l+1}[j][c], db[i] = sum_c err[i][c] over the whole batch
 * (padding chains have err = 0); eight j at a time, each err vector loaded once and eight
 * independent accumulators in flight */
static void weight_gradient(int L, const int *sizes, const int *off, const int *woff, int Bp,
                            const float *ERR, const float *F, float *dW, float *db)
{
    for (int i = 0; i < off[L + 1]; i++) {
        f32x16 a = {0};
        const float *er = ERR + (size_t)i * Bp;
        for (int c = 0; c < Bp; c += 16) a += load16(er + c);
        float t = 0.0f;
        for (int k = 0; k < 16; k++) t += a[k];
        db[i] = t;
    }
    for (int l = 0; l < L; l++) {
        const int n_in = sizes[l + 1];
        for (int i = 0; i < sizes[l]; i++) {
            const float *er = ERR + (size_t)(off[l] + i) * Bp;
            for (int jb = 0; jb < n_in; jb += 8) {
                const float *f[8];
                for (int k = 0; k < 8; k++) f[k] = F + (size_t)(off[l + 1] + (jb + k < n_in ? jb + k : n_in - 1)) * Bp;
                f32x16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
                for (int c = 0; c < Bp; c += 16) {
                    const f32x16 e = load16(er + c);
                    a0 += e * load16(f[0] + c); a1 += e * load16(f[1] + c);
                    a2 += e * load16(f[2] + c); a3 += e * load16(f[3] + c);
                    a4 += e * load16(f[4] + c); a5 += e * load16(f[5] + c);
                    a6 += e * load16(f[6] + c); a7 += e * load16(f[7] + c);
                }
                const f32x16 acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
                for (int k = 0; k < 8 && jb + k < n_in; k++) {
                    float t = 0.0f;
                    for (int q = 0; q < 16; q++) t += acc[k][q];
                    dW[woff[l] + (size_t)i * n_in + jb + k] = t;
                }
            }
        }
    }
}

/* flags: [0] linear, [1] order (1|2), [2] driven, [3] clamp (x_0 clamped to x0),
 *        [4] bottom_up, [5] use_u (interneurons, one per unit), [6] integrator (0 euler,
 *        1 exact, 2 preconditioned), [7] diagonal (learned Lambda)
 * par:   [0] dt, [1] m, [2] tau_v_factor, [3] tau_u, [4] rate = dt / tau_theta,
 *        [5] precision_min, [6] precision_max
 * W: the L weight matrices W_l (n_l x n_{l+1}, row-major) back to back, mask the same or NULL.
 * Runs steps step0 .. step0 + n_steps - 1; learning from step learn_from (< 0: never), the
 * time average adds x from step avg_from (< 0: never). Returns 0. */
int hee_run(int B, int Bp, int L, const int *sizes, const int *flags, const double *par,
            float *X, float *V, float *U, float *W, const float *mask, float *bias, float *lam,
            const float *tau, const float *x0, float *total,
            int64_t step0, int64_t n_steps, int64_t learn_from, int64_t avg_from,
            uint64_t key, const float *noise)
{
    const int linear = flags[0], order = flags[1], driven = flags[2], clamp = flags[3];
    const int bottom_up = flags[4], use_u = flags[5], integ = flags[6], diag = flags[7];
    const double dt = par[0], m = par[1], tvf = par[2], tau_u = par[3], rate = par[4];
    const float lam_min = (float)par[5], lam_max = (float)par[6];
    int off[64], woff[64];
    off[0] = 0; woff[0] = 0;
    for (int l = 0; l <= L; l++) off[l + 1] = off[l] + sizes[l];
    for (int l = 0; l < L; l++) woff[l + 1] = woff[l] + sizes[l] * sizes[l + 1];
    const int N = off[L + 1], n0 = sizes[0], nW = woff[L];
    const uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    const int slot_v = 1, slot_u = driven ? 2 : 1, n_slots = 1 + (order == 2 && driven) + use_u;

    float *buf = malloc(sizeof(float) * ((size_t)N * Bp * 2 + (size_t)N * CB * 2 + (size_t)N * 11 + (size_t)nW + CB * 3));
    if (!buf) return 1;
    /* f(x) and x - A'(eta) of the whole batch (the weight gradient reads them after the
     * chunks), eta and the score per chunk */
    float *F = buf, *ERR = F + (size_t)N * Bp, *E = ERR + (size_t)N * Bp, *S = E + N * CB;
    float *c_drift = S + N * CB, *c_noise = c_drift + N, *c_v = c_noise + N, *c_vg = c_v + N, *c_vn = c_vg + N;
    float *two_lam = c_vn + N, *cu = two_lam + N, *ce = cu + N, *cn = ce + N, *db = cn + N, *dlam = db + N;
    float *dW = dlam + N, *nx = dW + nW, *nv = nx + CB, *nu = nv + CB;
    for (int i = 0; i < N; i++) {
        double t = tau[i], tv = tvf * t;
        c_drift[i] = (float)(dt / t); c_noise[i] = (float)sqrt(2.0 * dt / t);
        c_v[i] = (float)(1.0 - dt * m / tv); c_vg[i] = (float)(-4.0 * dt * m / tv);
        c_vn[i] = (float)(2.0 * m * sqrt(2.0 * t) / tv * sqrt(dt));
        two_lam[i] = 2.0f * lam[i];
    }
    if (use_u) u_coeffs(N, lam, integ, dt, tau_u, cu, ce, cn);

    for (int64_t k = 0; k < n_steps; k++) {
        const int64_t s = step0 + k;
        const int learn = learn_from >= 0 && s >= learn_from, avg = total && avg_from >= 0 && s >= avg_from;
        if (learn) memset(dlam, 0, sizeof(float) * N);
        for (int c0 = 0; c0 < Bp; c0 += CB) {
            const int nc = B - c0 < CB ? B - c0 : CB;  /* real chains in this chunk (the rest is padding) */
            const uint32_t chunk = (uint32_t)(c0 / CB);
#define ROW(A, i) ((A) + (size_t)(i) * Bp + c0)
#define TMP(A, i) ((A) + (size_t)(i) * CB)
            /* f(x) */
            for (int i = 0; i < N; i++) {
                const float *restrict x = ROW(X, i);
                float *restrict f = ROW(F, i);
                if (linear) for (int c = 0; c < CB; c++) f[c] = x[c];
                else for (int c = 0; c < CB; c++) f[c] = tanhf(x[c]);
            }
            /* eta_l = W_l f(x_{l+1}) + b_l (two rows at a time: each f row loaded once); eta_L = b_L */
            for (int l = 0; l <= L; l++) {
                const int n_in = l < L ? sizes[l + 1] : 0;
                for (int i = 0; i < sizes[l]; i += 2) {
                    const int i2 = i + 1 < sizes[l] ? i + 1 : i;  /* odd count: the last row twice */
                    float a0[CB], a1[CB];
                    const float b0 = bias[off[l] + i], b1 = bias[off[l] + i2];
                    for (int c = 0; c < CB; c++) { a0[c] = b0; a1[c] = b1; }
                    const float *w0 = W + woff[l] + (size_t)i * n_in, *w1 = W + woff[l] + (size_t)i2 * n_in;
                    for (int j = 0; j < n_in; j++) {
                        const float u = w0[j], v = w1[j];
                        const float *restrict f = ROW(F, off[l + 1] + j);
                        for (int c = 0; c < CB; c++) { a0[c] += u * f[c]; a1[c] += v * f[c]; }
                    }
                    memcpy(TMP(E, off[l] + i), a0, sizeof a0);
                    memcpy(TMP(E, off[l] + i2), a1, sizeof a1);
                }
            }
            /* score S = eta - 2 Lambda x; ERR = x - A'(eta) (0 on padding chains) */
            for (int i = 0; i < N; i++) {
                const float *restrict x = ROW(X, i), *restrict e = TMP(E, i);
                float *restrict sc = TMP(S, i), *restrict er = ROW(ERR, i);
                const float tl = two_lam[i];
                for (int c = 0; c < CB; c++) sc[c] = e[c] - tl * x[c];
                if (use_u) { const float *restrict u = ROW(U, i); for (int c = 0; c < CB; c++) er[c] = x[c] - u[c]; }
                else for (int c = 0; c < CB; c++) er[c] = x[c] - e[c] / tl;
                for (int c = nc; c < CB; c++) er[c] = 0.0f;
            }
            /* bottom-up term f'(x_{l+1}) * (W_l^T err_l), two rows at a time */
            if (bottom_up)
                for (int l = 0; l < L; l++) {
                    const int n_in = sizes[l + 1];
                    for (int j = 0; j < n_in; j += 2) {
                        const int j2 = j + 1 < n_in ? j + 1 : j;
                        float a0[CB], a1[CB];
                        for (int c = 0; c < CB; c++) { a0[c] = 0.0f; a1[c] = 0.0f; }
                        for (int i = 0; i < sizes[l]; i++) {
                            const float u = W[woff[l] + (size_t)i * n_in + j], v = W[woff[l] + (size_t)i * n_in + j2];
                            const float *restrict er = ROW(ERR, off[l] + i);
                            for (int c = 0; c < CB; c++) { a0[c] += u * er[c]; a1[c] += v * er[c]; }
                        }
                        for (int h = 0; h < (j2 > j ? 2 : 1); h++) {
                            const int jj = off[l + 1] + (h ? j2 : j);
                            const float *acc = h ? a1 : a0;
                            float *restrict sc = TMP(S, jj);
                            const float *restrict f = ROW(F, jj);
                            if (linear) for (int c = 0; c < CB; c++) sc[c] += acc[c];
                            else for (int c = 0; c < CB; c++) sc[c] += acc[c] * (1.0f - f[c] * f[c]);
                        }
                    }
                }
            /* Lambda's learning signal needs this step's x and u, before the moves */
            if (learn && diag)
                for (int i = 0; i < N; i++) {
                    const float *restrict x = ROW(X, i);
                    float a2 = 0.0f;
                    if (use_u) { const float *restrict u = ROW(U, i); for (int c = 0; c < nc; c++) a2 += u[c] * u[c] - x[c] * x[c]; }
                    else {
                        const float *restrict e = TMP(E, i);
                        const float tl = two_lam[i], inv = 1.0f / tl;
                        for (int c = 0; c < nc; c++) { float a = e[c] / tl; a2 += a * a + inv - x[c] * x[c]; }
                    }
                    dlam[i] += a2;
                }
            /* x (and v) move, clamp, interneurons on this step's eta, time average */
            for (int i = 0; i < N; i++) {
                float *restrict x = ROW(X, i);
                const float *restrict sc = TMP(S, i);
                const uint32_t unit = (uint32_t)i;
                if (noise) memcpy(nx, noise + (((size_t)k * n_slots) * N + i) * Bp + c0, sizeof(float) * CB);
                else philox_normals(k0, k1, unit, (uint64_t)s, chunk, nx);
                const float cd = c_drift[i], cnz = c_noise[i];
                const int clamped = clamp && i < n0;
                if (order == 1) {
                    if (!clamped) for (int c = 0; c < CB; c++) x[c] += cd * sc[c] + cnz * nx[c];
                } else {
                    float *restrict v = ROW(V, i);
                    if (!clamped) for (int c = 0; c < CB; c++) x[c] += cd * (sc[c] - v[c]) + cnz * nx[c];
                    const float a = c_v[i], g = c_vg[i], b = c_vn[i];
                    if (driven) {
                        if (noise) memcpy(nv, noise + (((size_t)k * n_slots + slot_v) * N + i) * Bp + c0, sizeof(float) * CB);
                        else philox_normals(k0, k1, unit | (1u << 24), (uint64_t)s, chunk, nv);
                        for (int c = 0; c < CB; c++) v[c] = a * v[c] + g * sc[c] + b * nv[c];
                    } else for (int c = 0; c < CB; c++) v[c] = a * v[c] + b * nx[c];
                }
                if (clamped) { const float *restrict xc = x0 + (size_t)i * Bp + c0; for (int c = 0; c < CB; c++) x[c] = xc[c]; }
                if (use_u) {
                    if (noise) memcpy(nu, noise + (((size_t)k * n_slots + slot_u) * N + i) * Bp + c0, sizeof(float) * CB);
                    else philox_normals(k0, k1, unit | (2u << 24), (uint64_t)s, chunk, nu);
                    float *restrict u = ROW(U, i);
                    const float *restrict e = TMP(E, i);
                    const float a = cu[i], b = ce[i], g = cn[i];
                    for (int c = 0; c < CB; c++) u[c] = a * u[c] + b * e[c] + g * nu[c];
                }
                if (avg) { float *restrict t = ROW(total, i); for (int c = 0; c < CB; c++) t[c] += x[c]; }
            }
#undef ROW
#undef TMP
        }
        /* learning update from the step's start state (batch means), as HEE.apply_updates */
        if (learn) {
            weight_gradient(L, sizes, off, woff, Bp, ERR, F, dW, db);
            const float r = (float)(rate / B);
            for (int w = 0; w < nW; w++) {
                W[w] += r * dW[w];
                if (mask) W[w] *= mask[w];
            }
            for (int i = 0; i < N; i++) bias[i] += r * db[i];
            if (diag) {
                for (int i = 0; i < N; i++) {
                    float v = lam[i] + r * dlam[i];
                    lam[i] = v < lam_min ? lam_min : (v > lam_max ? lam_max : v);
                    two_lam[i] = 2.0f * lam[i];
                }
                if (use_u) u_coeffs(N, lam, integ, dt, tau_u, cu, ce, cn);
            }
        }
    }
    free(buf);
    return 0;
}
