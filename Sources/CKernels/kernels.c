// Element-wise float32 transcendental functions for the DINOP step, written as branch-free loops that the
// compiler vectorises; built for AVX2+FMA and for the baseline, chosen at load time.
#include "dinop_kernels.h"
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__clang__)
#define DINOP_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
// The attention's softmax runs over every pair of a group's items: 16 lanes where the CPU has them.
#define DINOP_WIDE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DINOP_CLONES
#define DINOP_WIDE_CLONES
#endif

// exp(x), Cephes-style polynomial on x - n ln2 (about 2 ulp). n = round(x log2 e) is read from the mantissa
// of x log2 e + 1.5 * 2^23, which avoids a float-to-int conversion.
static inline float exp_approx(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    const float magic = 12582912.0f;
    float shifted = x * 1.44269504f + magic;
    float n = shifted - magic;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    uint32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    bits = (bits - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

// The largest of start and row[0..n): eight independent lanes, then the rest. A single running maximum is a chain
// of dependent max instructions (four cycles each on Intel cores) that no compiler splits without -ffast-math.
static inline float row_max(const float *row, long n, float start) {
    float lanes[8];
    for (int k = 0; k < 8; k++) lanes[k] = start;
    long j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) lanes[k] = row[j + k] > lanes[k] ? row[j + k] : lanes[k];
    float top = start;
    for (int k = 0; k < 8; k++) top = lanes[k] > top ? lanes[k] : top;
    for (; j < n; j++) top = row[j] > top ? row[j] : top;
    return top;
}

DINOP_CLONES
void dinop_sigmoid(float *x, long count) {
    for (long i = 0; i < count; i++) x[i] = 1.0f / (1.0f + exp_approx(-x[i]));
}

DINOP_CLONES
void dinop_tanh(float *x, long count) {
    for (long i = 0; i < count; i++) {
        float v = x[i];
        float a = v < 0 ? -v : v;
        // Near zero an odd polynomial keeps the relative error small; elsewhere 1 - 2 / (e^{2|x|} + 1).
        float z = v * v;
        float p = -5.70498872745e-3f;
        p = p * z + 2.06390887954e-2f;
        p = p * z - 5.37397155531e-2f;
        p = p * z + 1.33314422036e-1f;
        p = p * z - 3.33332819422e-1f;
        float small = p * z * v + v;
        float large = 1.0f - 2.0f / (exp_approx(a + a) + 1.0f);
        large = v < 0 ? -large : large;
        x[i] = a < 0.625f ? small : large;
    }
}

DINOP_CLONES
void dinop_relu(float *x, long count) {
    for (long i = 0; i < count; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

// Per head, K and V are first transposed to dh rows of n, so that the loops over the keys run over contiguous
// floats and vectorise (dh is 4 with ACMR's sizes: a loop over it would not).
DINOP_CLONES
void dinop_attention(const float *qkv, long n, long d, long g, float scale, float *probs, const float *mask,
                     float *heads, float *scratch) {
    // The sums over keys may be reordered (vectorised): within float rounding of the order the reference uses.
    // Not -ffast-math for the file, which breaks exp_approx's rounding trick.
#pragma clang fp reassociate(on)
    long dh = d / g, stride = 3 * d;
    float *kt = scratch, *vt = scratch + dh * n;
    for (long h = 0; h < g; h++) {
        for (long j = 0; j < n; j++) {
            for (long c = 0; c < dh; c++) {
                kt[c * n + j] = qkv[j * stride + d + h * dh + c];
                vt[c * n + j] = qkv[j * stride + 2 * d + h * dh + c];
            }
        }
        for (long i = 0; i < n; i++) {
            float *row = probs + (h * n + i) * n;
            const float *q = qkv + i * stride + h * dh;
            // Scores: the first column writes the row, the others add to it (dh is at least 1).
            float q0 = q[0] * scale;
            for (long j = 0; j < n; j++) row[j] = q0 * kt[j];
            for (long c = 1; c < dh; c++) {
                float qc = q[c] * scale;
                const float *k = kt + c * n;
                for (long j = 0; j < n; j++) row[j] += qc * k[j];
            }
            float top = row_max(row, n, row[0]);
            float total = 0;
            for (long j = 0; j < n; j++) {
                row[j] = exp_approx(row[j] - top);
                total += row[j];
            }
            float inverse = 1.0f / total;
            for (long j = 0; j < n; j++) row[j] *= inverse;
            float *out = heads + i * d + h * dh;
            const float *m = mask ? mask + (h * n + i) * n : 0;
            for (long c = 0; c < dh; c++) {
                const float *v = vt + c * n;
                float sum = 0;
                if (m) { for (long j = 0; j < n; j++) sum += row[j] * m[j] * v[j]; }
                else { for (long j = 0; j < n; j++) sum += row[j] * v[j]; }
                out[c] += sum;
            }
        }
    }
}

DINOP_CLONES
void dinop_attention_backward(const float *qkv, long n, long d, long g, float scale, const float *probs,
                              const float *mask, const float *dheads, float *dqkv, float *scratch) {
#pragma clang fp reassociate(on)
    long dh = d / g, stride = 3 * d;
    float *kt = scratch, *vt = kt + dh * n, *dkt = vt + dh * n, *dvt = dkt + dh * n, *dp = dvt + dh * n;
    for (long h = 0; h < g; h++) {
        for (long j = 0; j < n; j++) {
            for (long c = 0; c < dh; c++) {
                kt[c * n + j] = qkv[j * stride + d + h * dh + c];
                vt[c * n + j] = qkv[j * stride + 2 * d + h * dh + c];
                dkt[c * n + j] = 0;
                dvt[c * n + j] = 0;
            }
        }
        for (long i = 0; i < n; i++) {
            const float *row = probs + (h * n + i) * n, *o = dheads + i * d + h * dh, *q = qkv + i * stride + h * dh;
            const float *m = mask ? mask + (h * n + i) * n : 0;
            // O_i = Σ_j (P_ij · mask_ij) V_j: dV_j += P_ij mask_ij dO_i; dP_ij = mask_ij (dO_i · V_j).
            for (long j = 0; j < n; j++) dp[j] = 0;
            for (long c = 0; c < dh; c++) {
                float oc = o[c];
                const float *v = vt + c * n;
                float *dv = dvt + c * n;
                for (long j = 0; j < n; j++) dp[j] += oc * v[j];
                if (m) { for (long j = 0; j < n; j++) dv[j] += row[j] * m[j] * oc; }
                else { for (long j = 0; j < n; j++) dv[j] += row[j] * oc; }
            }
            if (m) { for (long j = 0; j < n; j++) dp[j] *= m[j]; }
            float weighted = 0;
            for (long j = 0; j < n; j++) weighted += row[j] * dp[j];
            // The softmax: dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik), scaled; then dQ_i = Σ_j dS_ij K_j, dK_j += dS_ij Q_i.
            for (long j = 0; j < n; j++) dp[j] = row[j] * (dp[j] - weighted) * scale;
            float *dq = dqkv + i * stride + h * dh;
            for (long c = 0; c < dh; c++) {
                const float *k = kt + c * n;
                float *dk = dkt + c * n;
                float sum = 0, qc = q[c];
                for (long j = 0; j < n; j++) {
                    sum += dp[j] * k[j];
                    dk[j] += dp[j] * qc;
                }
                dq[c] += sum;
            }
        }
        for (long j = 0; j < n; j++) {
            for (long c = 0; c < dh; c++) {
                dqkv[j * stride + d + h * dh + c] += dkt[c * n + j];
                dqkv[j * stride + 2 * d + h * dh + c] += dvt[c * n + j];
            }
        }
    }
}

// One key block of an online softmax (MARKETS.md competition's attention): per row, the new running maximum, the
// decay of what was summed before (0 for a row's first block), the block's scores turned into exp(s − max) in place
// and its sum added to the decayed total.
DINOP_WIDE_CLONES
void dinop_online_softmax(float *scores, long rows, long columns, float *maximum, float *total, float *decay) {
    for (long r = 0; r < rows; r++) {
        float *row = scores + r * columns;
        // Sixteen lanes for the sum: a reduction in one variable would not vectorise (the order of float additions
        // is fixed without -ffast-math).
        float sums[16];
        float top = row_max(row, columns, maximum[r]);
        long j;
        decay[r] = maximum[r] == -__builtin_inff() ? 0.0f : exp_approx(maximum[r] - top);
        for (int k = 0; k < 16; k++) sums[k] = 0.0f;
        for (j = 0; j + 16 <= columns; j += 16) {
            for (int k = 0; k < 16; k++) {
                row[j + k] = exp_approx(row[j + k] - top);
                sums[k] += row[j + k];
            }
        }
        float sum = 0.0f;
        for (int k = 0; k < 16; k++) sum += sums[k];
        for (; j < columns; j++) {
            row[j] = exp_approx(row[j] - top);
            sum += row[j];
        }
        maximum[r] = top;
        total[r] = total[r] * decay[r] + sum;
    }
}
