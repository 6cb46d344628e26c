#ifndef DINOP_KERNELS_H
#define DINOP_KERNELS_H

/// In place x[i] = 1 / (1 + exp(-x[i])), float32, vectorised.
void dinop_sigmoid(float *x, long count);

/// In place x[i] = tanh(x[i]), float32, vectorised.
void dinop_tanh(float *x, long count);

/// In place x[i] = max(x[i], 0), float32, vectorised (a branch per element mispredicts half the time).
void dinop_relu(float *x, long count);

/// BOP.md's multi-head self-attention of one sequence, float32, every token seeing every token. `qkv`: n rows of
/// [Q | K | V] (3d floats each); head h owns columns h·dh … (h+1)·dh − 1, dh = d / g. Writes
/// probs[(h·n + i)·n + j] = softmax_j(scale · Q_h[i] · K_h[j]) and adds Σ_j probs·mask[(h·n + i)·n + j]·V_h[j] to
/// heads[i·d + h·dh …] (mask NULL: no dropout). `scratch`: 2·dh·n floats.
void dinop_attention(const float *qkv, long n, long d, long g, float scale, float *probs, const float *mask,
                     float *heads, float *scratch);

/// The backward pass of `dinop_attention` for one sequence: given the gradient at `heads` (`dheads`, n × d) and the
/// pass's `probs` and `mask`, adds the gradients of Q, K and V to `dqkv` (n rows of 3d). `scratch`: 4·dh·n + n floats.
void dinop_attention_backward(const float *qkv, long n, long d, long g, float scale, const float *probs,
                              const float *mask, const float *dheads, float *dqkv, float *scratch);

/// One key block of an online softmax, float32, vectorised: per row r of `scores` (rows × columns), with its running
/// `maximum[r]` (−∞ before the first block) and `total[r]`: the new maximum m over the row and the old one, decay[r] =
/// exp(old − m) (0 for a first block), the scores replaced by exp(score − m), total[r] = total[r]·decay[r] + their sum.
void dinop_online_softmax(float *scores, long rows, long columns, float *maximum, float *total, float *decay);

#endif
