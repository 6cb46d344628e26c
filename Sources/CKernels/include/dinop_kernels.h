#ifndef DINOP_KERNELS_H
#define DINOP_KERNELS_H

/// In place x[i] = 1 / (1 + exp(-x[i])), float32, vectorised.
void dinop_sigmoid(float *x, long count);

/// In place x[i] = tanh(x[i]), float32, vectorised.
void dinop_tanh(float *x, long count);

/// In place x[i] = max(x[i], 0), float32, vectorised (a branch per element mispredicts half the time).
void dinop_relu(float *x, long count);

#endif
