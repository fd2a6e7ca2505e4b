/* HEE's Euler loop in C (method parameter ``inner_loop: compiled``; issue 21).
 *
 * Built at run time by ebm_bench/samplers/hee_compiled.py (gcc -O3 -march=native
 * -ffast-math, loaded with ctypes); see that module for the what and why. This file is
 * the loop of ebm_bench/samplers/hee_fused.py::run_fused written out over the batch:
 * the state is held unit-major, A[i * Bp + c] (unit i, chain c), so every operation is a
 * loop over chains that the compiler vectorises, and the chains are processed in chunks
 * of CB = 64 whose working set (eta, the score) stays in cache; f(x) and x - A'(eta) are
 * kept for the whole batch, which the weight gradient reads after the chunks.
 * Per Euler step and chunk, in the order of the eager loop (ebm_bench/methods/hee.py::
 * HEE.simulate): f(x), eta_l = W_l f(x_{l+1}) + b_l, A'(eta) (interneurons or closed
 * form), the score eta - 2 Lambda x + f'(x) W^T (x - A'), the local learning signal
 * summed over the chains, the x / v move, the clamp of x_0, the interneurons' move on
 * this step's eta, the time average; after all chunks the learning update of W, b and
 * Lambda (all chunks read the step's start parameters, as the eager loop's batch does).
 *
 * Gaussian noise: xoshiro128++ in 64 vector lanes seeded from a 64-bit key (drawn by the
 * caller from the method's torch.Generator at each simulate call), then Box-Muller: see
 * next_normals. The numbers are consumed in the loop's fixed order (step, chunk of 64
 * chains, unit, draw x / v / u), so a run is a deterministic function of its seed.
 * With ``noise`` non-NULL the numbers are read from it instead (tests: the eager loop's
 * own draws, layout [step][slot][unit][chain]).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CB 64   /* chains per chunk: the 64 normals of one generator call */
#define NB 16   /* vector lanes */

typedef uint32_t u32x16 __attribute__((vector_size(64)));

/* The generator: xoshiro128++ (Blackman & Vigna 2021, "Scrambled linear pseudorandom number
 * generators", ACM TOMS 47(4); 128-bit state, period 2^128 - 1, passes BigCrush), as NS x 16
 * independent streams run side by side in vector lanes (one vector op advances 16 streams).
 * Each stream's 128-bit state is two SplitMix64 outputs (Steele, Lea & Flood 2014, the
 * seeding the xoshiro authors recommend) from key ^ (stream index << 48): ``hee_seed``. */
#define NS 4  /* state vectors: one per 16 of the 64 numbers a call makes */
#define STATE_WORDS (NS * 4 * 16)

static inline u32x16 rotl16(u32x16 x, int k) { return (x << k) | (x >> (32 - k)); }

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* state[(k * 4 + w) * 16 + lane]: word w of stream (k, lane) */
void hee_seed(uint64_t key, uint32_t *state)
{
    for (int k = 0; k < NS; k++)
        for (int lane = 0; lane < 16; lane++) {
            uint64_t x = key ^ ((uint64_t)(k * 16 + lane) << 48), a = splitmix64(&x), b = splitmix64(&x);
            if (a == 0 && b == 0) a = 1;  /* the all-zero state is xoshiro's fixed point */
            state[(k * 4 + 0) * 16 + lane] = (uint32_t)a;
            state[(k * 4 + 1) * 16 + lane] = (uint32_t)(a >> 32);
            state[(k * 4 + 2) * 16 + lane] = (uint32_t)b;
            state[(k * 4 + 3) * 16 + lane] = (uint32_t)(b >> 32);
        }
}

/* the next 16 outputs of the 16 streams of state vector k */
static inline u32x16 xoshiro_next(uint32_t *restrict state, int k)
{
    u32x16 s0, s1, s2, s3;
    uint32_t *st = state + k * 64;
    memcpy(&s0, st, 64); memcpy(&s1, st + 16, 64); memcpy(&s2, st + 32, 64); memcpy(&s3, st + 48, 64);
    const u32x16 r = rotl16(s0 + s3, 7) + s0, t = s1 << 9;
    s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl16(s3, 11);
    memcpy(st, &s0, 64); memcpy(st + 16, &s1, 64); memcpy(st + 32, &s2, 64); memcpy(st + 48, &s3, 64);
    return r;
}

/* the next 64 standard normals into out[0..63] by Box-Muller (the transform torch's CPU
 * normal_ applies to its uniforms): out[q], out[q + 16] from the q-th lanes of state
 * vectors 0 (radius) and 1 (angle), out[q + 32], out[q + 48] from vectors 2 and 3 */
static void next_normals(uint32_t *restrict state, float *restrict out)
{
    uint32_t w[4][NB];
    for (int k = 0; k < NS; k++) {
        const u32x16 v = xoshiro_next(state, k);
        memcpy(w[k], &v, sizeof w[k]);
    }
    const float two24 = 5.9604644775390625e-08f; /* 2^-24 */
    const float quarter = 1.1920928955078125e-07f * 0.7853981633974483f; /* 2^-23 * pi / 4 */
    float r[2][NB], c[2][NB], sn[2][NB];
#pragma omp simd
    for (int q = 0; q < NB; q++) {  /* radius sqrt(-2 ln u1), u1 in (0, 1) so the log is finite */
        r[0][q] = sqrtf(-2.0f * logf(((float)(w[0][q] >> 8) + 0.5f) * two24));
        r[1][q] = sqrtf(-2.0f * logf(((float)(w[2][q] >> 8) + 0.5f) * two24));
    }
    /* angle uniform on a full turn: quadrant k (top 2 bits) plus phi uniform on [-pi/4, pi/4)
     * (next 24 bits); cos / sin of phi by their Taylor series to phi^8 / phi^9 (truncation
     * < 3e-8 on |phi| <= pi/4, below float32's rounding), then the quarter turns k */
    for (int h = 0; h < 2; h++) {
        const uint32_t *wa = w[2 * h + 1];
#pragma omp simd
        for (int q = 0; q < NB; q++) {
            const float phi = ((float)((wa[q] >> 6) & 0xFFFFFFu) - 8388608.0f) * quarter;
            const float p2 = phi * phi;
            const float cs = 1.0f + p2 * (-0.5f + p2 * (1.0f / 24 + p2 * (-1.0f / 720 + p2 * (1.0f / 40320))));
            const float sn_ = phi * (1.0f + p2 * (-1.0f / 6 + p2 * (1.0f / 120 + p2 * (-1.0f / 5040 + p2 * (1.0f / 362880)))));
            const uint32_t k = wa[q] >> 30;
            const float cc = (k & 1u) ? -sn_ : cs, ss = (k & 1u) ? cs : sn_;  /* rotate by k quarter turns */
            c[h][q] = (k & 2u) ? -cc : cc;
            sn[h][q] = (k & 2u) ? -ss : ss;
        }
    }
#pragma omp simd
    for (int q = 0; q < NB; q++) {
        out[q] = r[0][q] * c[0][q];
        out[q + NB] = r[0][q] * sn[0][q];
        out[q + 2 * NB] = r[1][q] * c[1][q];
        out[q + 3 * NB] = r[1][q] * sn[1][q];
    }
}


/* ``n_blocks`` x 64 consecutive normals of the generator seeded with ``key`` (tests of the
 * law), and the raw 32-bit outputs of state vector 0 (tests against a scalar xoshiro128++) */
void hee_normals(uint64_t key, int64_t n_blocks, float *out)
{
    uint32_t state[STATE_WORDS];
    hee_seed(key, state);
    for (int64_t b = 0; b < n_blocks; b++) next_normals(state, out + b * CB);
}

void hee_raw(uint64_t key, int n, uint32_t *out)
{
    uint32_t state[STATE_WORDS];
    hee_seed(key, state);
    for (int i = 0; i < n; i++) {
        const u32x16 v = xoshiro_next(state, 0);
        memcpy(out + 16 * i, &v, 64);
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
 * (padding chains have err = 0); a block of two i by eight j at a time: each err vector
 * and each f vector loaded once for two and eight products, sixteen independent sums */
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
        for (int i = 0; i < sizes[l]; i += 2) {  /* two rows of err share each f load */
            const int i2 = i + 1 < sizes[l] ? i + 1 : i;
            const float *er0 = ERR + (size_t)(off[l] + i) * Bp, *er1 = ERR + (size_t)(off[l] + i2) * Bp;
            for (int jb = 0; jb < n_in; jb += 8) {
                const float *f[8];
                for (int k = 0; k < 8; k++) f[k] = F + (size_t)(off[l + 1] + (jb + k < n_in ? jb + k : n_in - 1)) * Bp;
                f32x16 a[8] = {{0}}, b[8] = {{0}};
                for (int c = 0; c < Bp; c += 16) {
                    const f32x16 e0 = load16(er0 + c), e1 = load16(er1 + c);
                    for (int k = 0; k < 8; k++) {
                        const f32x16 fk = load16(f[k] + c);
                        a[k] += e0 * fk;
                        b[k] += e1 * fk;
                    }
                }
                for (int k = 0; k < 8 && jb + k < n_in; k++) {
                    float t0 = 0.0f, t1 = 0.0f;
                    for (int q = 0; q < 16; q++) { t0 += a[k][q]; t1 += b[k][q]; }
                    dW[woff[l] + (size_t)i * n_in + jb + k] = t0;
                    dW[woff[l] + (size_t)i2 * n_in + jb + k] = t1;
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
            uint32_t *rng_state, const float *noise)
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
#define ROW(A, i) ((A) + (size_t)(i) * Bp + c0)
#define TMP(A, i) ((A) + (size_t)(i) * CB)
            /* f(x) of layers 1..L (f(x_0) enters nothing: eta_l reads f(x_{l+1})) */
            for (int i = n0; i < N; i++) {
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
                if (noise) memcpy(nx, noise + (((size_t)k * n_slots) * N + i) * Bp + c0, sizeof(float) * CB);
                else next_normals(rng_state, nx);
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
                        else next_normals(rng_state, nv);
                        for (int c = 0; c < CB; c++) v[c] = a * v[c] + g * sc[c] + b * nv[c];
                    } else for (int c = 0; c < CB; c++) v[c] = a * v[c] + b * nx[c];
                }
                if (clamped) { const float *restrict xc = x0 + (size_t)i * Bp + c0; for (int c = 0; c < CB; c++) x[c] = xc[c]; }
                if (use_u) {
                    if (noise) memcpy(nu, noise + (((size_t)k * n_slots + slot_u) * N + i) * Bp + c0, sizeof(float) * CB);
                    else next_normals(rng_state, nu);
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
