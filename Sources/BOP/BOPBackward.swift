import CKernels
import DINOP

extension BOPPass {
    /// Adds the gradient of a loss to `gradient` (the model's flat layout), given its gradient at each sequence's
    /// logit.
    func backward(dLogits: [T], into gradient: inout [T]) {
        let d = network.config.width, values = network.values, count = sequences.count, k = n - 1
        // The output layer: z = w_u · t_user + w_c · T_L[n] + b.
        var dY = [T](repeating: 0, count: rows * d)
        for s in 0..<count {
            let dz = dLogits[s]
            gradient[network.outBias] += dz
            for c in 0..<d {
                gradient[network.out + c] += dz * user[s * d + c]
                gradient[network.out + d + c] += dz * output[(s * n + n - 1) * d + c]
                dY[(s * n + n - 1) * d + c] += dz * values[network.out + d + c]
                if k > 0 {
                    let share = dz * values[network.out + c] / T(k)
                    for j in 0..<k { dY[(s * n + j) * d + c] += share }
                }
            }
        }
        for l in stride(from: network.layers.count - 1, through: 0, by: -1) {
            dY = layerBackward(l, dY, into: &gradient)
        }
        // Tokens: the item and market embeddings; the candidate's rep term.
        for (s, sequence) in sequences.enumerated() {
            for (j, row) in (sequence.history + [sequence.candidate]).enumerated() {
                let at = (s * n + j) * d
                for c in 0..<d {
                    gradient[network.item + row * d + c] += dY[at + c]
                    if let m = sequence.market { gradient[network.market + m * d + c] += dY[at + c] }
                }
            }
            if let rep = sequence.rep, let w = network.rep, let r = network.repWidth, rep.count == r {
                let at = (s * n + n - 1) * d
                for c in 0..<d { for q in 0..<r { gradient[w + c * r + q] += dY[at + c] * T(rep[q]) } }
            }
        }
    }

    /// One layer's backward pass: the gradient at its input, given the gradient at its output.
    private func layerBackward(_ l: Int, _ dY: [T], into gradient: inout [T]) -> [T] {
        let layer = network.layers[l], d = network.config.width, g = network.config.heads, dh = d / g
        let ff = network.config.ffn
        // Second norm, then the feed-forward block (its input C also feeds the residual).
        var dC = layerNormBackward(dY, normalised: norm2[l], rstd: rstd2[l], weight: layer.norm2, bias: layer.norm2Bias,
                                   into: &gradient)
        var dOutput = dC
        dOutput.applyDropout(outputMask[l])
        var dHidden = [T](repeating: 0, count: rows * ff)
        denseBackward(dOut: dOutput, x: droppedHidden[l], inCount: ff, outCount: d, weight: layer.linear2, bias: layer.bias2,
                      dX: &dHidden, into: &gradient)
        dHidden.applyDropout(hiddenMask[l])
        hidden[l].withUnsafeBufferPointer { hidden in
            dHidden.withUnsafeMutableBufferPointer { dHidden in
                for i in dHidden.indices { dHidden[i] = hidden[i] > 0 ? dHidden[i] : 0 }
            }
        }
        var dCFromFFN = [T](repeating: 0, count: rows * d)
        denseBackward(dOut: dHidden, x: c[l], inCount: d, outCount: ff, weight: layer.linear1, bias: layer.bias1,
                      dX: &dCFromFFN, into: &gradient)
        for i in dC.indices { dC[i] += dCFromFFN[i] }
        // First norm; its input is the layer's input plus the attention block's output.
        let dX1 = layerNormBackward(dC, normalised: norm1[l], rstd: rstd1[l], weight: layer.norm1, bias: layer.norm1Bias,
                                    into: &gradient)
        var dBlock = dX1
        dBlock.applyDropout(blockMask[l])
        var dHeads = [T](repeating: 0, count: rows * d)
        denseBackward(dOut: dBlock, x: heads[l], inCount: d, outCount: d, weight: layer.outProj, bias: layer.outBias,
                      dX: &dHeads, into: &gradient)
        // Attention: O_i = Σ_j P_ij V_j, P = softmax(scale · Q Kᵀ) per sequence and head.
        let qkv = self.qkv[l], probabilities = attention[l], scale = 1 / T(dh).squareRoot(), dropped = attentionMask[l]
        var dQKV = [T](repeating: 0, count: rows * 3 * d)
        var dP = [T](repeating: 0, count: n)
        let n = self.n, count = sequences.count
        qkv.withUnsafeBufferPointer { qkvBuffer in
        probabilities.withUnsafeBufferPointer { pBuffer in
        dHeads.withUnsafeBufferPointer { dHeadsBuffer in
        dropped.withUnsafeBufferPointer { maskBuffer in
        dQKV.withUnsafeMutableBufferPointer { dQKVBuffer in
        dP.withUnsafeMutableBufferPointer { dPBuffer in
            let qkv = qkvBuffer.baseAddress!, probabilities = pBuffer.baseAddress!, dHeads = dHeadsBuffer.baseAddress!
            let dQKV = dQKVBuffer.baseAddress!, dP = dPBuffer.baseAddress!
            // (An empty array's buffer may still have a base address.)
            let dropped = maskBuffer.isEmpty ? nil : maskBuffer.baseAddress
            if T.self == Float.self {
                // The vectorised kernel (C); the generic loops below are the float64 path of the gradient checks.
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 4 * dh * n + n)
                defer { scratch.deallocate() }
                for s in 0..<count {
                    dinop_attention_backward(asFloat(qkv + s * n * 3 * d), n, d, g, Float(scale), asFloat(probabilities + s * g * n * n),
                                             dropped.map { asFloat($0 + s * g * n * n) }, asFloat(dHeads + s * n * d),
                                             asFloat(dQKV + s * n * 3 * d), scratch)
                }
                return
            }
            for s in 0..<count {
                for h in 0..<g {
                    for i in 0..<n {
                        let row = probabilities + ((s * g + h) * n + i) * n, o = dHeads + (s * n + i) * d + h * dh
                        let rowMask = dropped.map { $0 + ((s * g + h) * n + i) * n }
                        var weighted: T = 0
                        for j in 0..<n {
                            // O = (P ⊙ mask) V: the dropped weight reaches V, the mask scales what reaches P.
                            let keep = rowMask?[j] ?? 1, weight = row[j] * keep
                            let at = (s * n + j) * 3 * d + 2 * d + h * dh
                            let v = qkv + at, dV = dQKV + at
                            var dot: T = 0
                            for c in 0..<dh {
                                dot += o[c] * v[c]
                                dV[c] += weight * o[c]
                            }
                            dP[j] = dot * keep
                            weighted += row[j] * dP[j]
                        }
                        let q = (s * n + i) * 3 * d + h * dh
                        for j in 0..<n {
                            let dScore = row[j] * (dP[j] - weighted) * scale
                            let key = (s * n + j) * 3 * d + d + h * dh
                            for c in 0..<dh {
                                dQKV[q + c] += dScore * qkv[key + c]
                                dQKV[key + c] += dScore * qkv[q + c]
                            }
                        }
                    }
                }
            }
        }}}}}}
        var dX = dX1
        var dFromQKV = [T](repeating: 0, count: rows * d)
        denseBackward(dOut: dQKV, x: inputs[l], inCount: d, outCount: 3 * d, weight: layer.inProj, bias: layer.inBias,
                      dX: &dFromQKV, into: &gradient)
        for i in dX.indices { dX[i] += dFromQKV[i] }
        return dX
    }

    /// `y = x Wᵀ + b`: adds dW, db to `gradient` and sets `dX = dY · W`.
    private func denseBackward(dOut: [T], x: [T], inCount: Int, outCount: Int, weight: Int, bias: Int, dX: inout [T],
                               into gradient: inout [T]) {
        gradient.withUnsafeMutableBufferPointer { grad in
            T.gemm(transA: true, transB: false, m: outCount, n: inCount, k: rows, alpha: 1, dOut, lda: outCount,
                   x, ldb: inCount, beta: 1, grad.baseAddress! + weight, ldc: inCount)
            for r in 0..<rows { for j in 0..<outCount { grad[bias + j] += dOut[r * outCount + j] } }
        }
        network.values.withUnsafeBufferPointer { p in
            T.gemm(transA: false, transB: false, m: rows, n: inCount, k: outCount, alpha: 1, dOut, lda: outCount,
                   p.baseAddress! + weight, ldb: inCount, beta: 0, &dX, ldc: inCount)
        }
    }

    /// LayerNorm's backward pass per token: adds dγ, dβ and returns the gradient at its input.
    private func layerNormBackward(_ dY: [T], normalised: [T], rstd: [T], weight: Int, bias: Int,
                                   into gradient: inout [T]) -> [T] {
        let d = network.config.width, values = network.values
        var dX = [T](repeating: 0, count: rows * d)
        var dHat = [T](repeating: 0, count: d)
        let rows = self.rows
        dY.withUnsafeBufferPointer { dYBuffer in
        normalised.withUnsafeBufferPointer { normalisedBuffer in
        values.withUnsafeBufferPointer { valuesBuffer in
        gradient.withUnsafeMutableBufferPointer { gradientBuffer in
        dX.withUnsafeMutableBufferPointer { dXBuffer in
        dHat.withUnsafeMutableBufferPointer { dHatBuffer in
            let dY = dYBuffer.baseAddress!, normalised = normalisedBuffer.baseAddress!, gamma = valuesBuffer.baseAddress! + weight
            let dGamma = gradientBuffer.baseAddress! + weight, dBeta = gradientBuffer.baseAddress! + bias
            let dX = dXBuffer.baseAddress!, dHat = dHatBuffer.baseAddress!
            for r in 0..<rows {
                let g = dY + r * d, hat = normalised + r * d
                var meanDHat: T = 0, meanDHatHat: T = 0
                for c in 0..<d {
                    dGamma[c] += g[c] * hat[c]
                    dBeta[c] += g[c]
                    dHat[c] = g[c] * gamma[c]
                    meanDHat += dHat[c]
                    meanDHatHat += dHat[c] * hat[c]
                }
                meanDHat /= T(d)
                meanDHatHat /= T(d)
                for c in 0..<d { dX[r * d + c] = rstd[r] * (dHat[c] - meanDHat - hat[c] * meanDHatHat) }
            }
        }}}}}}
        return dX
    }
}
