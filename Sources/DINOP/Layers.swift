/// Encoders and heads, batched over rows. Shared by serving and training.
extension Network {
    /// `out[rows × W.out] = relu?(x · Wᵀ + b)` for the weight file's `<prefix>.weight` / `<prefix>.bias`.
    func dense(_ prefix: String, rows: Int, x: UnsafePointer<T>, ldx: Int, relu: Bool, out: UnsafeMutablePointer<T>) {
        let w = layout.require("\(prefix).weight"), b = layout.require("\(prefix).bias")
        let (outCount, inCount) = (w.shape[0], w.shape[1])
        parameters.values.withUnsafeBufferPointer { p in
            for i in 0..<rows { (out + i * outCount).update(from: p.baseAddress! + b.offset, count: outCount) }
            T.linear(rows: rows, out: outCount, in: inCount, x, ldx: ldx, weight: p.baseAddress! + w.offset,
                     ldw: inCount, accumulate: true, out, ldy: outCount)
        }
        if relu { T.relu(out, count: rows * outCount) }
    }

    /// Concatenated embedding rows of `rows` items, `rows × Σ d_f`.
    func gatherEmbeddings(_ ids: [[Int]], into out: UnsafeMutablePointer<T>) {
        let widths = layout.dims.embeddingWidths
        let total = widths.reduce(0, +)
        parameters.values.withUnsafeBufferPointer { p in
            for (i, itemRows) in ids.enumerated() {
                var column = 0
                for (f, field) in layout.config.siiFields.enumerated() {
                    let table = layout.require("sii.emb.\(field)")
                    (out + i * total + column).update(from: p.baseAddress! + table.offset + itemRows[f] * widths[f],
                                                      count: widths[f])
                    column += widths[f]
                }
            }
        }
    }

    /// `rep = concat(rep_d, e_sii, e_sis)` for each row.
    func assembleRepresentation(rows: Int, pooled: UnsafePointer<T>, sii: UnsafePointer<T>, sis: UnsafePointer<T>,
                                into rep: UnsafeMutablePointer<T>) {
        let h = hidden, dSii = layout.dims.siiWidth, dSis = layout.dims.sisWidth, r = representationWidth
        for i in 0..<rows {
            (rep + i * r).update(from: pooled + i * h, count: h)
            (rep + i * r + h).update(from: sii + i * dSii, count: dSii)
            (rep + i * r + h + dSii).update(from: sis + i * dSis, count: dSis)
        }
    }

    /// Every head's raw outputs (`rows × outputWidth`) from `rep` (`rows × R`) and `e_act` (`rows × D_act`).
    /// `hiddenOut` (`rows × headHiddenWidth`) receives the heads' first-layer activations after relu.
    /// `hiddenTerm` (`rows × headHiddenWidth`), when given, adds to their pre-activations (MARKETS.md's `o` term).
    func heads(rows: Int, rep: UnsafePointer<T>, activity: UnsafePointer<T>?, hiddenTerm: UnsafePointer<T>? = nil,
               hiddenOut: UnsafeMutablePointer<T>, out: UnsafeMutablePointer<T>) {
        let width = headHiddenWidth, r = representationWidth
        for i in 0..<rows { (hiddenOut + i * width).update(from: headHiddenBias, count: width) }
        if let hiddenTerm {
            for j in 0..<(rows * width) { hiddenOut[j] += hiddenTerm[j] }
        }
        headHidden.withUnsafeBufferPointer {
            T.linear(rows: rows, out: width, in: r, rep, ldx: r, weight: $0.baseAddress!, ldw: r,
                     accumulate: true, hiddenOut, ldy: width)
        }
        if let activity, let ja = heads.first(where: { $0.head == .ja }) {
            let dAct = layout.dims.actWidth
            jaActivityWeight.withUnsafeBufferPointer {
                T.linear(rows: rows, out: ja.columns.count, in: dAct, activity, ldx: dAct, weight: $0.baseAddress!,
                         ldw: dAct, accumulate: true, hiddenOut + ja.columns.lowerBound, ldy: width)
            }
        }
        T.relu(hiddenOut, count: rows * width)
        var column = 0
        for (head, columns) in heads {
            let w2 = layout.require("head.\(head.rawValue).fc2.weight"), b2 = layout.require("head.\(head.rawValue).fc2.bias")
            parameters.values.withUnsafeBufferPointer { p in
                for i in 0..<rows { (out + i * outputWidth + column).update(from: p.baseAddress! + b2.offset, count: head.outputs) }
                T.linear(rows: rows, out: head.outputs, in: columns.count, hiddenOut + columns.lowerBound, ldx: width,
                         weight: p.baseAddress! + w2.offset, ldw: columns.count, accumulate: true,
                         out + column, ldy: outputWidth)
            }
            column += head.outputs
        }
    }
}
