/* One pass over a step's raw scores (desktop/engine/fused_scan.py calls it through ctypes).

   A captured step needs three things from the whole vocabulary: z = sum exp(l - shift) (the raw
   softmax's normaliser), sum exp(l - shift) * (l - shift) (its entropy), and the ids of the
   scores at or above a threshold (the head every later stage works on). numpy takes three
   passes, each cold after a decode (~0.33 ms for Gemma 3's 262,144 scores on this project's
   2-core machine); this takes one (~0.08 ms): each 16 (8) scores are loaded once, exponentiated
   with the vectorised expf llama.cpp's CPU backend uses (ggml_v_expf, after ARM's optimized
   routines: ~1.5 ulp), summed in float lanes per block of 1,024 and in double across blocks.

   Scores more than 87 nats below `shift` count as e^-87 with l - shift = -87 (at most 262,144 x
   1.6e-38 in z: nothing next to the z >= 1e-30 the caller accepts). A score more than 80 nats
   above `shift` sets z to infinity: the caller shifts by the max instead.

   Built by setuptools as an optional extension (pyproject.toml): where no compiler or no
   x86-64 SIMD path exists, openlid_scan_level() says 0 and the caller keeps to numpy. It is
   also a Python extension module (an empty one) so that setuptools, uv and PyInstaller treat
   it as one. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#define OPENLID_EXPORT __declspec(dllexport)
#else
#define OPENLID_EXPORT __attribute__((visibility("default")))
#endif

#if defined(__GNUC__) && defined(__x86_64__)
#define OPENLID_X86 1
#include <immintrin.h>
#endif

#define BLOCK 1024
#define FLOOR (-87.0f)
#define CEILING 80.0f

/* The scalar tail and level 0: exact double exp. */
static void scan_tail(const float *l, int64_t i, int64_t n, float shift, float t, int32_t *ids,
                      int64_t cap, int64_t *k, double *z, double *dot, float *mx) {
    for (; i < n; i++) {
        float v = l[i];
        float x = v - shift;
        if (x < FLOOR) x = FLOOR;
        double w = x > CEILING ? INFINITY : exp((double)x);
        *z += w;
        *dot += w * (double)x;
        if (v > *mx) *mx = v;
        if (v >= t) {
            if (*k < cap) ids[*k] = (int32_t)i;
            (*k)++;
        }
    }
}

/* collect's scalar loop, from l[i] on with k ids already written. */
static int64_t collect_tail(const float *l, int64_t i, int64_t n, float t, int32_t *ids,
                            int64_t k, int64_t cap) {
    for (; i < n; i++)
        if (l[i] >= t) {
            if (k == cap) return cap + 1;
            ids[k++] = (int32_t)i;
        }
    return k;
}

#ifdef OPENLID_X86

__attribute__((target("avx512f,avx512dq")))
static inline __m512 expf16(__m512 x) {
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b,
                                        _mm512_set1_ps(0x1.573e2ep-5f)),
                        u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b,
                                        _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(j, n);
}

__attribute__((target("avx512f,avx512dq")))
static void scan16(const float *l, int64_t n, float shift, float t, int32_t *ids, int64_t cap,
                   int64_t *k_out, double *z_out, double *dot_out, float *mx_out) {
    const __m512 vs = _mm512_set1_ps(shift), vt = _mm512_set1_ps(t);
    const __m512 lo = _mm512_set1_ps(FLOOR), hi = _mm512_set1_ps(CEILING);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    double z = 0.0, dot = 0.0;
    int64_t k = 0, i = 0;
    int over = 0;
    while (i + BLOCK <= n) {
        __m512 az = _mm512_setzero_ps(), ad = _mm512_setzero_ps();
        for (int64_t end = i + BLOCK; i < end; i += 16) {
            __m512 v = _mm512_loadu_ps(l + i);
            vmax = _mm512_max_ps(vmax, v);
            __m512 x = _mm512_max_ps(_mm512_sub_ps(v, vs), lo);
            over |= _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ) != 0;
            __m512 w = expf16(_mm512_min_ps(x, hi));
            az = _mm512_add_ps(az, w);
            ad = _mm512_fmadd_ps(w, x, ad);
            __mmask16 m = _mm512_cmp_ps_mask(v, vt, _CMP_GE_OQ);
            if (m) {
                if (k + 16 <= cap) {
                    _mm512_mask_compressstoreu_epi32(
                        ids + k, m, _mm512_add_epi32(_mm512_set1_epi32((int)i), lane));
                    k += __builtin_popcount(m);
                } else {
                    for (unsigned bits = m; bits; bits &= bits - 1) {
                        if (k < cap) ids[k] = (int32_t)(i + __builtin_ctz(bits));
                        k++;
                    }
                }
            }
        }
        z += _mm512_reduce_add_ps(az);
        dot += _mm512_reduce_add_ps(ad);
    }
    float mx = _mm512_reduce_max_ps(vmax);
    scan_tail(l, i, n, shift, t, ids, cap, &k, &z, &dot, &mx);
    *k_out = k;
    *z_out = over ? INFINITY : z;
    *dot_out = dot;
    *mx_out = mx;
}

__attribute__((target("avx2,fma")))
static inline __m256 expf8(__m256 x) {
    /* x within [-87, 80]: 2^n is a normal float, no special cases. */
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(
        _mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1))));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b,
                                        _mm256_set1_ps(0x1.573e2ep-5f)),
                        u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b,
                                        _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    return _mm256_fmadd_ps(j, k, k);
}

__attribute__((target("avx2,fma")))
static float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma")))
static void scan8(const float *l, int64_t n, float shift, float t, int32_t *ids, int64_t cap,
                  int64_t *k_out, double *z_out, double *dot_out, float *mx_out) {
    const __m256 vs = _mm256_set1_ps(shift), vt = _mm256_set1_ps(t);
    const __m256 lo = _mm256_set1_ps(FLOOR), hi = _mm256_set1_ps(CEILING);
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    double z = 0.0, dot = 0.0;
    int64_t k = 0, i = 0;
    int over = 0;
    while (i + BLOCK <= n) {
        __m256 az = _mm256_setzero_ps(), ad = _mm256_setzero_ps();
        for (int64_t end = i + BLOCK; i < end; i += 8) {
            __m256 v = _mm256_loadu_ps(l + i);
            vmax = _mm256_max_ps(vmax, v);
            __m256 x = _mm256_max_ps(_mm256_sub_ps(v, vs), lo);
            over |= _mm256_movemask_ps(_mm256_cmp_ps(x, hi, _CMP_GT_OQ));
            __m256 w = expf8(_mm256_min_ps(x, hi));
            az = _mm256_add_ps(az, w);
            ad = _mm256_fmadd_ps(w, x, ad);
            unsigned m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, vt, _CMP_GE_OQ));
            while (m) {
                if (k < cap) ids[k] = (int32_t)(i + __builtin_ctz(m));
                k++;
                m &= m - 1;
            }
        }
        z += hsum8(az);
        dot += hsum8(ad);
    }
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(vmax, 1), _mm256_castps256_ps128(vmax));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float mx = _mm_cvtss_f32(m4);
    scan_tail(l, i, n, shift, t, ids, cap, &k, &z, &dot, &mx);
    *k_out = k;
    *z_out = over ? INFINITY : z;
    *dot_out = dot;
    *mx_out = mx;
}

__attribute__((target("avx512f,avx512dq")))
static int64_t collect16(const float *l, int64_t n, float t, int32_t *ids, int64_t cap) {
    const __m512 vt = _mm512_set1_ps(t);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int64_t k = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(l + i), vt, _CMP_GE_OQ);
        if (!m) continue;
        int c = __builtin_popcount(m);
        if (k + c > cap) return cap + 1;
        _mm512_mask_compressstoreu_epi32(ids + k, m,
                                         _mm512_add_epi32(_mm512_set1_epi32((int)i), lane));
        k += c;
    }
    return collect_tail(l, i, n, t, ids, k, cap);
}

#endif /* OPENLID_X86 */

/* The ids of the scores >= t, ascending, to ids[0..cap); how many (cap + 1: more than cap). */
static int64_t collect(int level, const float *l, int64_t n, float t, int32_t *ids, int64_t cap) {
#ifdef OPENLID_X86
    if (level >= 2) return collect16(l, n, t, ids, cap);
#endif
    (void)level;
    return collect_tail(l, 0, n, t, ids, 0, cap);
}

/* The functions' signatures, as fused_scan.ABI expects them: a build left from older sources
   (an in-place .so the install did not rebuild) is not called with arguments it does not take. */
OPENLID_EXPORT int openlid_scan_abi(void) { return 4; }

/* The fastest level this CPU runs: 2 AVX-512, 1 AVX2 with FMA, 0 none (exact but scalar: the
   caller keeps to numpy). */
OPENLID_EXPORT int openlid_scan_level(void) {
#ifdef OPENLID_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

/* Over l[0..n): out[0] = sum exp(x), out[1] = sum exp(x) * x with x = l - shift (see the top of
   the file for the clamps); *mx = the max score. Writes the ids of the scores >= t, ascending,
   to ids[0..cap) and returns how many there are (more than cap: only cap written). `level`:
   as openlid_scan_level, at most what it says. */
OPENLID_EXPORT int64_t openlid_scan(int level, const float *l, int64_t n, float shift, float t,
                                    int32_t *ids, int64_t cap, double *out, float *mx) {
    int64_t k = 0;
    double z = 0.0, dot = 0.0;
    float top = -INFINITY;
#ifdef OPENLID_X86
    if (level >= 2) {
        scan16(l, n, shift, t, ids, cap, &k, &z, &dot, &top);
    } else if (level == 1) {
        scan8(l, n, shift, t, ids, cap, &k, &z, &dot, &top);
    } else
#endif
    {
        (void)level;
        scan_tail(l, 0, n, shift, t, ids, cap, &k, &z, &dot, &top);
    }
    out[0] = z;
    out[1] = dot;
    *mx = top;
    return k;
}

/* --- a stage's few survivors ---

   The same figures step_shortcuts.small_snapshot computes with numpy (~20 µs in a dozen calls;
   this ~3 µs), for arrays of at most SNAPSHOT_MAX candidates: float64 throughout, ranks most
   probable first with ties by token id. */

#define SNAPSHOT_MAX 512

typedef struct {
    int32_t id;
    float logit;
    float p;
} token_data; /* llama.cpp's llama_token_data */

/* A token and its score, ranked most probable first with ties by id (the snapshot's and the
   head's order, as step_shortcuts.ranked orders them). */
typedef struct {
    float logit;
    int32_t id;
} scored;

static int by_score(const void *a, const void *b) {
    const scored *x = (const scored *)a, *y = (const scored *)b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The survivors (score > -inf) of data[0..n): their count (returned), the top_n of them in
   rank order with their probabilities renormalised over the survivors, and *mass = the sum of
   exp(raw[id] - shift) / z over them (their share of the raw softmax). -1 when n exceeds
   SNAPSHOT_MAX or an id is not one of raw[0..n_raw) (the caller uses numpy). */
OPENLID_EXPORT int64_t openlid_snapshot(const token_data *data, int64_t n, int64_t top_n,
                                        const float *raw, int64_t n_raw, double shift,
                                        double z, int32_t *out_ids, double *out_probs,
                                        double *mass) {
    scored alive[SNAPSHOT_MAX];
    if (n > SNAPSHOT_MAX) return -1;
    for (int64_t i = 0; i < n; i++)
        if (data[i].id < 0 || data[i].id >= n_raw) return -1; /* not a token of `raw` */
    int64_t kept = 0;
    double top = -INFINITY, raw_sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double logit = (double)data[i].logit;
        if (!(logit > -INFINITY)) continue; /* NaN is no survivor either, as in numpy */
        alive[kept].logit = data[i].logit;
        alive[kept].id = data[i].id;
        if (logit > top) top = logit;
        raw_sum += exp((double)raw[data[i].id] - shift) / z;
        kept++;
    }
    *mass = raw_sum;
    if (kept == 0) return 0;
    double total = 0.0;
    for (int64_t i = 0; i < kept; i++) total += exp(alive[i].logit - top);
    qsort(alive, (size_t)kept, sizeof(scored), by_score);
    int64_t m = top_n < kept ? top_n : kept;
    for (int64_t i = 0; i < m; i++) {
        out_ids[i] = alive[i].id;
        out_probs[i] = exp(alive[i].logit - top) / total;
    }
    return kept;
}

/* The distribution the draw used, renormalised from data[0..n)'s scores in float64 (-inf
   weighs 0; all -inf: uniform): *prob = `token`'s probability (0 when absent), *entropy in
   bits. -1 when n exceeds SNAPSHOT_MAX. */
OPENLID_EXPORT int64_t openlid_final(const token_data *data, int64_t n, int32_t token,
                                     double *prob, double *entropy) {
    if (n > SNAPSHOT_MAX) return -1;
    double top = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(data[i].logit) && (double)data[i].logit > top) top = data[i].logit;
    int any = top > -INFINITY;
    double weights[SNAPSHOT_MAX], total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double logit = (double)data[i].logit;
        weights[i] = !any ? 1.0 : (isfinite(data[i].logit) ? exp(logit - top) : 0.0);
        total += weights[i];
    }
    if (total == 0.0) total = 1.0;
    double h = 0.0, p_token = 0.0;
    int found = 0;
    for (int64_t i = 0; i < n; i++) {
        double p = weights[i] / total;
        if (p > 0.0) h -= p * log2(p);
        if (!found && data[i].id == token) {
            p_token = p;
            found = 1;
        }
    }
    *prob = p_token;
    *entropy = h;
    return n;
}

/* The whole vocabulary into a candidate array, in id order, as llama.cpp fills it from the
   logits (step_shortcuts.Candidates.fill): each slot's id and score written in one pass, where
   numpy writes the two fields in two strided passes over the 3 MB array (p is left as it was,
   as there). */
OPENLID_EXPORT void openlid_fill(token_data *data, const float *logits, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        data[i].id = (int32_t)i;
        data[i].logit = logits[i];
    }
}

/* --- ranking a head ---

   A head is every token at or above a threshold (the scan's ids, ascending). The capture needs
   its `count` best, ranked, and the score `reach` places down (the next step's threshold):
   numpy's partition and sort take ~45 µs in a dozen calls for ~1,000 ids; this ~10 µs. */

/* Put the k-th largest of v[0..n) at v[k-1], larger or equal ones before it, smaller or equal
   ones after (an nth_element, descending). v holds no NaN. */
static void select_desc(float *v, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        float pivot = v[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] > pivot) i++;
            while (v[j] < pivot) j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else return;
    }
}

/* Of the head ids[0..n) (scores logits[id]): the `count` highest and every one tied with the
   last of them, most probable first with ties by id, into out_ids/out_vals (room for n);
   returns how many (-1, nothing written, when an id lies outside logits[0..n_logits), a score
   is NaN, or not 1 <= count <= reach <= n). *floor = the `reach`-th highest score.
   `scratch`: room for 3n floats (n scores to select among, then n (score, id) pairs). */
OPENLID_EXPORT int64_t openlid_rank(const float *logits, int64_t n_logits, const int32_t *ids,
                                    int64_t n, int64_t count, int64_t reach, float *scratch,
                                    int32_t *out_ids, float *out_vals, float *floor) {
    if (count < 1 || count > reach || reach > n) return -1;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= n_logits) return -1; /* not a token of `logits` */
        scratch[i] = logits[ids[i]];
        if (scratch[i] != scratch[i]) return -1; /* NaN: no order to select by */
    }
    select_desc(scratch, n, reach);
    *floor = scratch[reach - 1];
    select_desc(scratch, reach, count);
    float cut = scratch[count - 1];
    int64_t m = 0;
    scored *kept = (scored *)(scratch + n);
    for (int64_t i = 0; i < n; i++) {
        float v = logits[ids[i]];
        if (v >= cut) {
            kept[m].logit = v;
            kept[m].id = ids[i];
            m++;
        }
    }
    qsort(kept, (size_t)m, sizeof(scored), by_score);
    for (int64_t i = 0; i < m; i++) {
        out_ids[i] = kept[i].id;
        out_vals[i] = kept[i].logit;
    }
    return m;
}

/* --- top-p's cut on a head, with llama.cpp's own numbers ---

   llama.cpp's top-p (src/llama-sampler.cpp) first runs llama_sampler_softmax_impl over the whole
   array: the max, then p = expf(logit - max) for each entry in array order, summed one after
   another in float32, then p /= that sum; then it sorts (the best 256 by buckets, everything
   when those hold less than p) and keeps up to the first position, best first, where the
   float32 running sum of p reaches p. engine.step_top_p finds the same cut on a head of the
   vocabulary; this computes the numbers it needs as llama.cpp does, with the same libm expf,
   the same float32 sum in the same order and the same division (bit for bit the same p), in
   one pass of expf instead of llama.cpp's three passes and its bucket sort (~0.9 ms against
   ~2.4 ms a step for Gemma's 262,144 scores here), and writes no p it does not keep.

   Returns how many tokens top-p keeps, written best first (ties by id) with their p to
   data[0..keep), or 0 where llama.cpp's own top-p must run instead (nothing written): a NaN or
   no finite score, a head of more than `limit` tokens, no head that reaches p (or only the whole
   vocabulary does), or two equal scores among the kept tokens or at the cut, which llama.cpp's
   sort may order otherwise. `heads`: the gaps below the max tried in turn; `scratch`: room for
   `limit` entries. */

typedef struct {
    scored key; /* first: by_score ranks these as it ranks `scored` */
    float p;
} ranked_entry;

OPENLID_EXPORT int64_t openlid_top_p(token_data *data, int64_t n, float p, const double *gaps,
                                     int64_t n_gaps, int64_t limit, void *scratch_room) {
    ranked_entry *scratch = (ranked_entry *)scratch_room;
    if (n < 1) return 0;
    /* The max (std::max in turn is the max itself when no score is NaN; eight running maxima
       keep the compares off one chain of latencies). */
    float m8[8];
    for (int j = 0; j < 8; j++) m8[j] = data[0].logit;
    int64_t i8 = 1;
    for (; i8 + 8 <= n; i8 += 8)
        for (int j = 0; j < 8; j++) {
            float v = data[i8 + j].logit;
            m8[j] = m8[j] < v ? v : m8[j];
        }
    float max_l = m8[0];
    for (int j = 1; j < 8; j++) max_l = max_l < m8[j] ? m8[j] : max_l;
    for (; i8 < n; i8++) max_l = max_l < data[i8].logit ? data[i8].logit : max_l;
    if (!isfinite(max_l)) return 0;
    /* The sum, and the first head in the same pass. */
    float cum_sum = 0.0f;
    int64_t count = 0;
    float threshold = n_gaps > 0 ? (float)((double)max_l - gaps[0]) : INFINITY;
    for (int64_t i = 0; i < n; i++) {
        float v = data[i].logit;
        cum_sum += expf(v - max_l);
        if (v >= threshold) {
            if (count < limit) {
                scratch[count].key.logit = v;
                scratch[count].key.id = data[i].id;
            }
            count++;
        }
    }
    if (cum_sum != cum_sum) return 0; /* a NaN score: no order to cut by */
    for (int64_t g = 0; g < n_gaps; g++) {
        if (g > 0) {
            threshold = (float)((double)max_l - gaps[g]);
            count = 0;
            for (int64_t i = 0; i < n; i++) {
                if (data[i].logit >= threshold) {
                    if (count == limit) return 0;
                    scratch[count].key.logit = data[i].logit;
                    scratch[count].key.id = data[i].id;
                    count++;
                }
            }
        } else if (count > limit) {
            return 0;
        }
        qsort(scratch, (size_t)count, sizeof(ranked_entry), by_score);
        float running = 0.0f;
        int64_t keep = 0;
        for (int64_t i = 0; i < count; i++) {
            float pi = expf(scratch[i].key.logit - max_l);
            scratch[i].p = pi / cum_sum;
            running += scratch[i].p;
            if (running >= p) {
                keep = i + 1;
                break;
            }
        }
        if (keep == 0) {
            if (count == n) return 0; /* never reaches p: llama.cpp keeps everything */
            continue;
        }
        int64_t seen = keep + 1 < count ? keep + 1 : count;
        for (int64_t i = 1; i < seen; i++)
            if (scratch[i].key.logit == scratch[i - 1].key.logit) return 0;
        for (int64_t i = 0; i < keep; i++) {
            data[i].id = scratch[i].key.id;
            data[i].logit = scratch[i].key.logit;
            data[i].p = scratch[i].p;
        }
        return keep;
    }
    return 0;
}

/* --- a whole captured step, when top-k is the first stage ---

   The engine's commonest chain (llama.cpp's default order: penalties and DRY when on, top-k,
   then top-p, min-p, temperature... and the draw) captured in one call instead of ~25 numpy
   and ctypes calls, each of which pays cold caches after the decode (~0.25 ms a token on this
   project's 2-core machine). It does exactly what StepSampler.sample_captured does for such a
   chain, in the same order and with the same code for every figure: penalties and DRY on
   their window's tokens alone (window_patch), the pass over the scores
   (openlid_scan), the head ranked (openlid_rank), top-k's input (every token at or above the
   k-th highest score, ids ascending), then each of llama.cpp's own samplers applied through
   the pointer the caller hands over (llama_sampler_apply), a snapshot after each
   (openlid_snapshot), llama.cpp's draw and the final distribution's figures (openlid_final).

   Before anything with a state runs (the stages after top-k: XTC's and the draw's RNG), any
   case the Python path treats otherwise returns 1 and the caller goes on in Python with what
   the scan found (or 2: it found nothing usable): a head that missed the guess, a normaliser
   out of range, a tie at top-k's cut. The tests hold both paths to llama.cpp's whole chain. */

typedef struct {
    token_data *data;
    size_t size;
    int64_t selected;
    bool sorted;
} token_array; /* llama.cpp's llama_token_data_array */

typedef void (*apply_fn)(void *sampler, token_array *cur);

typedef struct {
    /* in */
    int64_t level;
    const float *logits;
    int64_t n_vocab;
    double shift; /* the scan's shift and threshold (float32 there, as openlid_scan takes them) */
    double guess;
    int64_t top_n;
    int64_t top_k;
    int32_t *head; /* the scan's ids: room for head_cap */
    int64_t head_cap;
    float *scratch; /* openlid_rank's: room for 3 x head_cap */
    int32_t *rank_ids; /* the ranked head: room for head_cap each */
    float *rank_vals;
    token_array *arr; /* the candidates (step_shortcuts.Candidates: arr, buf) */
    token_data *buf;
    apply_fn apply;
    void *const *stages; /* top-k's sampler first, then every later stage's */
    int64_t n_stages;
    void *draw; /* llama.cpp's dist sampler, or NULL */
    /* Penalties and DRY before top-k (`prefix`, llama_sampler pointers, chain order): they
       change only the scores of their window's tokens (`history`: the last tokens, in any
       order, repeats included), so they run on an array of those alone (`wbuf`: room for
       w_cap), ids ascending out to `w_ids`, each stage's scores to its row of `w_vals`. */
    const int32_t *history;
    int64_t n_history;
    void *const *prefix;
    int64_t n_prefix;
    token_data *wbuf;
    int32_t *w_ids;
    float *w_vals; /* n_prefix rows of w_cap */
    int64_t w_cap;
    /* the window: ids ascending and their scores after the last prefix stage (set here) */
    const int32_t *window_ids;
    const float *window_vals;
    int64_t n_window;
    /* out: each stage's snapshot (ids and probs: n_stages rows of top_n) */
    int64_t *kept;
    double *mass;
    int32_t *ids;
    double *probs;
    /* out */
    double z, dot, top, floor;
    int64_t count, ranked, token, raw_rank;
    double prob, entropy;
} step_args;

static int by_scored_id(const void *a, const void *b) {
    int32_t x = ((const scored *)a)->id, y = ((const scored *)b)->id;
    return (x > y) - (x < y);
}

/* Where `id` lies in ids[0..n) (ascending), or -1. */
static int64_t window_index(const int32_t *ids, int64_t n, int32_t id) {
    int64_t lo = 0, hi = n - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (ids[mid] == id) return mid;
        if (ids[mid] < id) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static int by_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int by_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* StepSampler._window_patch: the window's distinct ids, ascending, into a->w_ids and each prefix
   stage's scores for them into its row of a->w_vals, by those very samplers applied to an array
   of the window's tokens alone. Returns the number of ids; -1 when it cannot (an id outside the
   vocabulary, too many, a stage that reordered or resized the array): the Python path then
   does it. Nothing with a state changes here (these samplers change state on accept only). */
static int64_t window_patch(step_args *a) {
    int64_t n_h = a->n_history, n = a->n_vocab;
    if (n_h < 0 || n_h > a->w_cap) return -1;
    int32_t *ids = a->w_ids;
    memcpy(ids, a->history, sizeof(int32_t) * (size_t)n_h);
    qsort(ids, (size_t)n_h, sizeof(int32_t), by_int32);
    int64_t n_w = 0;
    for (int64_t i = 0; i < n_h; i++) {
        if (ids[i] < 0 || ids[i] >= n) return -1;
        if (n_w == 0 || ids[i] != ids[n_w - 1]) ids[n_w++] = ids[i];
    }
    for (int64_t i = 0; i < n_w; i++) { /* Candidates.fill_ids */
        a->wbuf[i].id = ids[i];
        a->wbuf[i].logit = a->logits[ids[i]];
        a->wbuf[i].p = 0.0f;
    }
    for (int64_t s = 0; s < a->n_prefix; s++) {
        float *row = a->w_vals + s * a->w_cap;
        if (n_w > 0) {
            token_array w = {a->wbuf, (size_t)n_w, -1, false};
            a->apply(a->prefix[s], &w);
            if (w.data != a->wbuf || (int64_t)w.size != n_w) return -1;
        }
        for (int64_t i = 0; i < n_w; i++) {
            if (a->wbuf[i].id != ids[i]) return -1;
            row[i] = a->wbuf[i].logit;
        }
    }
    a->window_ids = ids;
    a->window_vals = a->w_vals + (a->n_prefix - 1) * a->w_cap;
    return n_w;
}

OPENLID_EXPORT int64_t openlid_step(step_args *a) {
    const float *l = a->logits;
    int64_t n = a->n_vocab, top_n = a->top_n, k = a->top_k;
    if (top_n < 1 || top_n > SNAPSHOT_MAX || k < 1 || k > SNAPSHOT_MAX || k >= n
        || a->n_stages < 1 || !a->apply)
        return 2;
    a->n_window = 0;
    if (a->n_prefix > 0) {
        int64_t n_w = window_patch(a);
        if (n_w < 0) return 2;
        a->n_window = n_w;
    }
    double sums[2];
    float mx;
    a->count = openlid_scan((int)a->level, l, n, (float)a->shift, (float)a->guess, a->head,
                            a->head_cap, sums, &mx);
    a->z = sums[0];
    a->dot = sums[1];
    a->top = mx;
    /* The head must hold top-N and top-k's input, and the normaliser be usable
       (fused_scan.Scanned.normalised): otherwise the Python path finds them. */
    int64_t n_w = a->n_window;
    int64_t need = top_n + n_w > k ? top_n + n_w : k; /* as StepSampler.sample_captured */
    if (!(a->z > 1e-30 && a->z < 1e30)) return 1;
    /* The last step's floor let in too few (this step's scores lie lower): the same gap below
       this step's max, then twice it..., in a pass that only compares (the sums stand). */
    double gap = a->shift - a->guess;
    for (int tries = 0; a->count < need && tries < 4 && gap > 0 && gap < 1e4; tries++) {
        a->count = collect((int)a->level, l, n, (float)((double)mx - gap), a->head, a->head_cap);
        gap *= 2;
    }
    if (a->count > a->head_cap || a->count < need) return 1;
    /* step_shortcuts.ranked_head: the `need` best, ranked, and the next step's guess. */
    int64_t head_n = a->count;
    int64_t reach = 4 * need + 800 < head_n ? 4 * need + 800 : head_n;
    float floor;
    int64_t m = openlid_rank(l, n, a->head, head_n, need, reach, a->scratch, a->rank_ids,
                             a->rank_vals, &floor);
    if (m < need) return 1; /* an id outside the scores, or a NaN */
    a->ranked = m;
    a->floor = floor;
    a->top = a->rank_vals[0];
    /* Top-k's input: every token whose current score (raw, or the window's after penalties
       and DRY) is at least the k-th highest, ids ascending. */
    scored top_in[SNAPSHOT_MAX * 2];
    int64_t n_keep = 0;
    if (n_w == 0) {
        n_keep = k;
        while (n_keep < m && a->rank_vals[n_keep] == a->rank_vals[k - 1]) n_keep++;
        if (n_keep > SNAPSHOT_MAX * 2) return 1;
        for (int64_t i = 0; i < n_keep; i++) {
            top_in[i].id = a->rank_ids[i];
            top_in[i].logit = a->rank_vals[i];
        }
    } else {
        /* The window's tokens by their current scores, best first (in the scratch past the
           ranking's room, which holds 3 x head_cap floats and used 3 x head_n at most). */
        if (n_w > a->head_cap) return 1;
        scored *win = (scored *)(a->scratch + 3 * a->head_cap) - n_w;
        if ((float *)win < a->scratch + 3 * head_n) return 1;
        for (int64_t i = 0; i < n_w; i++) {
            win[i].id = a->window_ids[i];
            win[i].logit = a->window_vals[i];
        }
        qsort(win, (size_t)n_w, sizeof(scored), by_score);
        /* The k-th highest current score: the ranked head's tokens outside the window merged
           with the window's. Every token outside the ranked head scores below its last. */
        int64_t ia = 0, ib = 0, taken = 0;
        float cut = -INFINITY;
        while (taken < k) {
            while (ia < m && window_index(a->window_ids, n_w, a->rank_ids[ia]) >= 0) ia++;
            int from_a = ia < m && (ib >= n_w || a->rank_vals[ia] >= win[ib].logit);
            if (!from_a && ib >= n_w) return 1; /* fewer than k tokens known */
            cut = from_a ? a->rank_vals[ia++] : win[ib++].logit;
            taken++;
        }
        if (cut < a->rank_vals[m - 1]) return 1; /* tokens past the head could reach it */
        for (int64_t i = 0; i < m && a->rank_vals[i] >= cut; i++) {
            if (window_index(a->window_ids, n_w, a->rank_ids[i]) >= 0) continue;
            if (n_keep == SNAPSHOT_MAX * 2) return 1;
            top_in[n_keep].id = a->rank_ids[i];
            top_in[n_keep].logit = a->rank_vals[i];
            n_keep++;
        }
        for (int64_t i = 0; i < n_w && win[i].logit >= cut; i++) {
            if (n_keep == SNAPSHOT_MAX * 2) return 1;
            top_in[n_keep++] = win[i];
        }
    }
    qsort(top_in, (size_t)n_keep, sizeof(scored), by_scored_id);
    token_array *arr = a->arr;
    for (int64_t i = 0; i < n_keep; i++) { /* Candidates.fill_ids: p is left as it was */
        a->buf[i].id = top_in[i].id;
        a->buf[i].logit = top_in[i].logit;
    }
    arr->data = a->buf;
    arr->size = (size_t)n_keep;
    arr->selected = -1;
    arr->sorted = false;
    a->apply(a->stages[0], arr);
    /* With no two equal scores at or above the cut every sort keeps the same tokens in the same
       order (StepSampler._start); otherwise the whole vocabulary, in Python. */
    int64_t kn = (int64_t)arr->size;
    if (kn < 1 || kn > SNAPSHOT_MAX) return 1;
    float kept_min = INFINITY, sorted_scores[SNAPSHOT_MAX];
    for (int64_t i = 0; i < kn; i++) {
        float v = arr->data[i].logit;
        sorted_scores[i] = v;
        if (v < kept_min) kept_min = v;
    }
    if (!arr->sorted) qsort(sorted_scores, (size_t)kn, sizeof(float), by_float);
    for (int64_t i = 1; i < kn; i++)
        if (sorted_scores[i] == sorted_scores[i - 1]) return 1;
    int64_t reaching = 0;
    for (int64_t i = 0; i < n_keep; i++) reaching += top_in[i].logit >= kept_min;
    if (reaching != kn) return 1;
    /* From here on every stage runs, and is snapshot, here. */
    for (int64_t s = 0; s < a->n_stages; s++) {
        if (s > 0) a->apply(a->stages[s], arr);
        if (arr->size > SNAPSHOT_MAX) return -1; /* no stage grows the array */
        a->kept[s] = openlid_snapshot(arr->data, (int64_t)arr->size, top_n, l, n, a->shift,
                                      a->z, a->ids + s * top_n, a->probs + s * top_n,
                                      a->mass + s);
        if (a->kept[s] < 0) return -1;
    }
    if (a->draw) a->apply(a->draw, arr);
    int64_t size = (int64_t)arr->size, sel = arr->selected;
    if (sel < 0) sel += size; /* as numpy reads a negative index */
    if (sel < 0 || sel >= size) return -1;
    int32_t token = arr->data[sel].id;
    a->token = token;
    openlid_final(arr->data, size, token, &a->prob, &a->entropy);
    /* The token's raw rank: from the ranked head when it is among the top N listed. */
    a->raw_rank = 0;
    for (int64_t i = 0; i < top_n; i++)
        if (a->rank_ids[i] == token) {
            a->raw_rank = i + 1;
            break;
        }
    if (a->raw_rank == 0) {
        float v = l[token];
        int64_t above = 0;
        for (int64_t i = 0; i < n; i++) above += l[i] > v;
        a->raw_rank = above + 1;
    }
    return 0;
}

/* openlid_step, its results as Python objects (called through ctypes.PyDLL, so with the GIL
   held): the code 1 or 2 as an int; or, when the step was taken whole, (token, prob,
   entropy_final, raw_rank, z, dot, top, floor, raw_ids, raw_probs, stages) with raw_probs =
   exp(score - shift) / z in double and stages a tuple of (kept, mass, ids, probs) per stage, the
   top-N as tuples. Building them here saves ~100 Python-level calls a token. NULL with a Python
   error when a stage broke what the step relies on, or memory ran out. */
static PyObject *id_at(const void *values, int64_t i) {
    return PyLong_FromLong(((const int32_t *)values)[i]);
}

static PyObject *float_at(const void *values, int64_t i) {
    return PyFloat_FromDouble(((const double *)values)[i]);
}

/* A tuple of values[0..m), each made by `item`. */
static PyObject *tuple_of(const void *values, int64_t m,
                          PyObject *(*item)(const void *, int64_t)) {
    PyObject *t = PyTuple_New((Py_ssize_t)m);
    if (!t) return NULL;
    for (int64_t i = 0; i < m; i++) {
        PyObject *v = item(values, i);
        if (!v) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, v);
    }
    return t;
}

static PyObject *window_view(const float *logits, int64_t n, const int32_t *raw_ids,
                             int64_t n_raw, const int32_t *w_ids, const float *w_vals,
                             int64_t n_w, double shift, double z, int64_t top_n,
                             float *scan_logits, int level);

OPENLID_EXPORT PyObject *openlid_step_py(step_args *a) {
    int64_t code = openlid_step(a);
    if (code > 0) return PyLong_FromLongLong(code);
    if (code < 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "a sampler stage broke the captured step (openlid_step)");
        return NULL;
    }
    int64_t top_n = a->top_n;
    double raw_probs[SNAPSHOT_MAX];
    for (int64_t i = 0; i < top_n; i++)
        raw_probs[i] = exp((double)a->rank_vals[i] - a->shift) / a->z;
    PyObject *stages = PyTuple_New((Py_ssize_t)a->n_stages);
    if (!stages) return NULL;
    for (int64_t s = 0; s < a->n_stages; s++) {
        int64_t m = a->kept[s] < top_n ? a->kept[s] : top_n;
        PyObject *stage = Py_BuildValue("(LdNN)", (long long)a->kept[s], a->mass[s],
                                        tuple_of(a->ids + s * top_n, m, id_at),
                                        tuple_of(a->probs + s * top_n, m, float_at));
        if (!stage) { Py_DECREF(stages); return NULL; }
        PyTuple_SET_ITEM(stages, (Py_ssize_t)s, stage);
    }
    /* Each prefix stage's view: the raw softmax with the window's scores after that stage,
       ranked among the raw head's best top_n + n_window and the window. */
    PyObject *windows = PyTuple_New((Py_ssize_t)a->n_prefix);
    if (!windows) { Py_DECREF(stages); return NULL; }
    for (int64_t s = 0; s < a->n_prefix; s++) {
        PyObject *view = window_view(a->logits, a->n_vocab, a->rank_ids, top_n + a->n_window,
                                     a->window_ids, a->w_vals + s * a->w_cap, a->n_window,
                                     a->shift, a->z, top_n, (float *)a->logits, (int)a->level);
        if (!view) { Py_DECREF(stages); Py_DECREF(windows); return NULL; }
        PyTuple_SET_ITEM(windows, (Py_ssize_t)s, view);
    }
    return Py_BuildValue("(LddLddddNNNN)", (long long)a->token, a->prob, a->entropy,
                         (long long)a->raw_rank, a->z, a->dot, a->top, a->floor,
                         tuple_of(a->rank_ids, top_n, id_at), tuple_of(raw_probs, top_n, float_at),
                         stages, windows);
}

/* z summed afresh over the scores with the window's changed (Normaliser.z_with, where the
   difference would keep little more than z's rounding): the pass of openlid_scan over the very
   scores, the window's written over theirs for the pass and put back, so that numpy's copy
   scanned the same way gives the same z. NAN where that cannot be done. */
static double z_afresh(int level, float *logits, int64_t n, const int32_t *w_ids,
                       const float *w_vals, int64_t n_w, double shift) {
    float *kept = (float *)PyMem_Malloc(sizeof(float) * (size_t)(n_w + 1));
    if (!kept) return NAN;
    for (int64_t i = 0; i < n_w; i++) {
        kept[i] = logits[w_ids[i]];
        logits[w_ids[i]] = w_vals[i];
    }
    double sums[2];
    float mx;
    int32_t none;
    openlid_scan(level, logits, n, (float)shift, INFINITY, &none, 0, sums, &mx);
    for (int64_t i = 0; i < n_w; i++) logits[w_ids[i]] = kept[i];
    PyMem_Free(kept);
    return sums[0] > 1e-30 && sums[0] < 1e30 ? sums[0] : NAN;
}

/* A penalties or DRY stage's view (StepSampler._window_view), as Python objects: the raw
   softmax with the window's scores changed to w_vals. z for the changed scores is z less the
   window's old terms plus its new ones (Normaliser.z_with); where that leaves less than a tenth
   of z (the window held most of the mass) it is summed afresh (z_afresh, over `scan_logits`:
   the scores again, writable, at `level`), or None is returned when `scan_logits` is NULL or
   that sum fails (numpy sums it). The top_n of the raw head's ids (raw_ids, which hold every
   token that can rank there) and the window, by their current scores, ties by id: (ids, probs)
   with probs = exp(score - shift) / z, in double. */
static PyObject *window_view(const float *logits, int64_t n, const int32_t *raw_ids,
                             int64_t n_raw, const int32_t *w_ids, const float *w_vals,
                             int64_t n_w, double shift, double z, int64_t top_n,
                             float *scan_logits, int level) {
    double old_terms = 0.0, new_terms = 0.0;
    for (int64_t i = 0; i < n_w; i++) {
        if (w_ids[i] < 0 || w_ids[i] >= n) Py_RETURN_NONE;
        old_terms += exp((double)logits[w_ids[i]] - shift);
        new_terms += exp((double)w_vals[i] - shift);
    }
    double z_new = z - old_terms + new_terms;
    if (!(z_new >= 0.1 * z)) {
        if (!scan_logits) Py_RETURN_NONE;
        z_new = z_afresh(level, scan_logits, n, w_ids, w_vals, n_w, shift);
        if (z_new != z_new) Py_RETURN_NONE;
    }
    /* Room for the candidates, then the top_n's ids and probabilities (scored is 8 bytes
       wide, so the doubles after it are aligned). */
    size_t room = (size_t)(n_raw + n_w + 1);
    scored *all = (scored *)PyMem_Malloc(sizeof(scored) * room
                                         + (sizeof(double) + sizeof(int32_t)) * (size_t)top_n);
    if (!all) return PyErr_NoMemory();
    double *top_probs = (double *)(all + room);
    int32_t *top_ids = (int32_t *)(top_probs + top_n);
    int64_t m = 0;
    for (int64_t i = 0; i < n_raw; i++) {
        if (raw_ids[i] < 0 || raw_ids[i] >= n) {
            PyMem_Free(all);
            Py_RETURN_NONE;
        }
        if (window_index(w_ids, n_w, raw_ids[i]) >= 0) continue;
        all[m].id = raw_ids[i];
        all[m].logit = logits[raw_ids[i]];
        m++;
    }
    for (int64_t i = 0; i < n_w; i++) {
        all[m].id = w_ids[i];
        all[m].logit = w_vals[i];
        m++;
    }
    qsort(all, (size_t)m, sizeof(scored), by_score);
    int64_t k = top_n < m ? top_n : m;
    for (int64_t i = 0; i < k; i++) {
        top_ids[i] = all[i].id;
        top_probs[i] = exp((double)all[i].logit - shift) / z_new;
    }
    PyObject *view = Py_BuildValue("(NN)", tuple_of(top_ids, k, id_at),
                                   tuple_of(top_probs, k, float_at));
    PyMem_Free(all);
    return view;
}

OPENLID_EXPORT PyObject *openlid_window_view(const float *logits, int64_t n,
                                             const int32_t *raw_ids, int64_t n_raw,
                                             const int32_t *w_ids, const float *w_vals,
                                             int64_t n_w, double shift, double z,
                                             int64_t top_n) {
    return window_view(logits, n, raw_ids, n_raw, w_ids, w_vals, n_w, shift, z, top_n, NULL, 0);
}

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT, "_scan",
    "Openlid's one pass over a step's scores; called through ctypes (fused_scan.py).", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scan(void) { return PyModule_Create(&scan_module); }
