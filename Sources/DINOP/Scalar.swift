// Public imports, unlike the other C modules': the kernels below are `@inlinable`, so that the generic model
// code of other modules is specialised for Float and Double, and inlined code may only call what its callers see.
public import CBLAS
public import CKernels
import Foundation

/// The element types the model math runs in: `Float` for serving and training, `Double` for gradient checks.
///
/// Every matrix product goes through OpenBLAS; the element-wise functions are vectorised C for `Float`.
public protocol DINOPScalar: BinaryFloatingPoint, Sendable where Self.RawSignificand: FixedWidthInteger {
    /// Row-major `C[m×n] = alpha · op(A) · op(B) + beta · C`.
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
        _ a: UnsafePointer<Self>, lda: Int, _ b: UnsafePointer<Self>, ldb: Int,
        beta: Self, _ c: UnsafeMutablePointer<Self>, ldc: Int)
    /// Row-major `y = alpha · op(A) · x + beta · y` with A of `rows × cols`.
    static func gemv(
        trans: Bool, rows: Int, cols: Int, alpha: Self, _ a: UnsafePointer<Self>, lda: Int,
        _ x: UnsafePointer<Self>, beta: Self, _ y: UnsafeMutablePointer<Self>)
    /// In place: `x[i] = σ(x[i])`.
    static func sigmoid(_ x: UnsafeMutablePointer<Self>, count: Int)
    /// In place: `x[i] = tanh(x[i])`.
    static func tanh(_ x: UnsafeMutablePointer<Self>, count: Int)
    /// In place: `x[i] = max(x[i], 0)`.
    static func relu(_ x: UnsafeMutablePointer<Self>, count: Int)
    static func exp(_ x: Self) -> Self
    /// One key block of an online softmax (`dinop_online_softmax`): scores become exp(score − running maximum),
    /// `maximum`, `total` and each row's `decay` of what came before are updated.
    static func onlineSoftmax(_ scores: UnsafeMutablePointer<Self>, rows: Int, columns: Int, maximum: UnsafeMutablePointer<Self>,
                              total: UnsafeMutablePointer<Self>, decay: UnsafeMutablePointer<Self>)
    static func log(_ x: Self) -> Self
    static func log1p(_ x: Self) -> Self
    static func expm1(_ x: Self) -> Self
}

extension DINOPScalar {
    /// `Y[rows×out] (+)= X[rows×in] · Wᵀ` for a weight `W` of shape `[out, in]` (the `nn.Linear` convention).
    @inlinable
    static func linear(
        rows: Int, out: Int, in inCount: Int, _ x: UnsafePointer<Self>, ldx: Int,
        weight: UnsafePointer<Self>, ldw: Int, accumulate: Bool, _ y: UnsafeMutablePointer<Self>, ldy: Int
    ) {
        guard rows > 0, out > 0 else { return }
        if rows == 1 {
            gemv(trans: false, rows: out, cols: inCount, alpha: 1, weight, lda: ldw, x, beta: accumulate ? 1 : 0, y)
            return
        }
        gemm(transA: false, transB: true, m: rows, n: out, k: inCount, alpha: 1, x, lda: ldx, weight, ldb: ldw,
             beta: accumulate ? 1 : 0, y, ldc: ldy)
    }
}

extension Float: DINOPScalar {
    @inlinable
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
        beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    @inlinable
    public static func gemv(
        trans: Bool, rows: Int, cols: Int, alpha: Float, _ a: UnsafePointer<Float>, lda: Int,
        _ x: UnsafePointer<Float>, beta: Float, _ y: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, blasint(rows), blasint(cols), alpha, a,
                    blasint(lda), x, 1, beta, y, 1)
    }

    @inlinable
    public static func sigmoid(_ x: UnsafeMutablePointer<Float>, count: Int) { dinop_sigmoid(x, count) }

    @inlinable
    public static func tanh(_ x: UnsafeMutablePointer<Float>, count: Int) { dinop_tanh(x, count) }

    @inlinable
    public static func relu(_ x: UnsafeMutablePointer<Float>, count: Int) { dinop_relu(x, count) }

    @inlinable
    public static func onlineSoftmax(_ scores: UnsafeMutablePointer<Float>, rows: Int, columns: Int, maximum: UnsafeMutablePointer<Float>,
                                     total: UnsafeMutablePointer<Float>, decay: UnsafeMutablePointer<Float>) {
        dinop_online_softmax(scores, rows, columns, maximum, total, decay)
    }

    @inlinable public static func exp(_ x: Float) -> Float { Foundation.exp(x) }
    @inlinable public static func log(_ x: Float) -> Float { Foundation.log(x) }
    @inlinable public static func log1p(_ x: Float) -> Float { Foundation.log1p(x) }
    @inlinable public static func expm1(_ x: Float) -> Float { Foundation.expm1(x) }
}

extension Double: DINOPScalar {
    @inlinable
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
        _ a: UnsafePointer<Double>, lda: Int, _ b: UnsafePointer<Double>, ldb: Int,
        beta: Double, _ c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    @inlinable
    public static func gemv(
        trans: Bool, rows: Int, cols: Int, alpha: Double, _ a: UnsafePointer<Double>, lda: Int,
        _ x: UnsafePointer<Double>, beta: Double, _ y: UnsafeMutablePointer<Double>
    ) {
        cblas_dgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, blasint(rows), blasint(cols), alpha, a,
                    blasint(lda), x, 1, beta, y, 1)
    }

    @inlinable
    public static func sigmoid(_ x: UnsafeMutablePointer<Double>, count: Int) {
        for i in 0..<count { x[i] = 1 / (1 + Foundation.exp(-x[i])) }
    }

    @inlinable
    public static func tanh(_ x: UnsafeMutablePointer<Double>, count: Int) {
        for i in 0..<count { x[i] = Foundation.tanh(x[i]) }
    }

    @inlinable
    public static func relu(_ x: UnsafeMutablePointer<Double>, count: Int) {
        for i in 0..<count { x[i] = Swift.max(x[i], 0) }
    }

    public static func onlineSoftmax(_ scores: UnsafeMutablePointer<Double>, rows: Int, columns: Int,
                                     maximum: UnsafeMutablePointer<Double>, total: UnsafeMutablePointer<Double>,
                                     decay: UnsafeMutablePointer<Double>) {
        for r in 0..<rows {
            let row = scores + r * columns
            var top = maximum[r]
            for j in 0..<columns { top = Swift.max(top, row[j]) }
            decay[r] = maximum[r] == -.infinity ? 0 : Foundation.exp(maximum[r] - top)
            var sum = 0.0
            for j in 0..<columns {
                row[j] = Foundation.exp(row[j] - top)
                sum += row[j]
            }
            maximum[r] = top
            total[r] = total[r] * decay[r] + sum
        }
    }

    @inlinable public static func exp(_ x: Double) -> Double { Foundation.exp(x) }
    @inlinable public static func log(_ x: Double) -> Double { Foundation.log(x) }
    @inlinable public static func log1p(_ x: Double) -> Double { Foundation.log1p(x) }
    @inlinable public static func expm1(_ x: Double) -> Double { Foundation.expm1(x) }
}

/// OpenBLAS settings that matter to timing.
public enum BLAS {
    /// OpenBLAS's build configuration (version, kernel, thread model).
    public static var configuration: String { String(cString: openblas_get_config()) }

    /// Threads OpenBLAS may use per call. The service steps small batches, where threads cost more than they give.
    public static func setThreads(_ count: Int) { openblas_set_num_threads(Int32(count)) }
}
