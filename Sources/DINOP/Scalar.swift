import CBLAS
import Foundation

/// The element types the model math runs in: `Float` for serving and training, `Double` for gradient checks.
///
/// Every matrix product goes through OpenBLAS; the element-wise functions are vectorised for `Float`.
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
    static func exp(_ x: Self) -> Self
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
    public static func sigmoid(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(x + i).storeBytes(of: VectorMath.sigmoid(v), as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            x[i] = 1 / (1 + Foundation.exp(-x[i]))
            i += 1
        }
    }

    @inlinable
    public static func tanh(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(x + i).storeBytes(of: VectorMath.tanh(v), as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            x[i] = Foundation.tanh(x[i])
            i += 1
        }
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

    @inlinable public static func exp(_ x: Double) -> Double { Foundation.exp(x) }
    @inlinable public static func log(_ x: Double) -> Double { Foundation.log(x) }
    @inlinable public static func log1p(_ x: Double) -> Double { Foundation.log1p(x) }
    @inlinable public static func expm1(_ x: Double) -> Double { Foundation.expm1(x) }
}

/// Vectorised float32 transcendental functions (Cephes-style polynomials, about 2 ulp).
@usableFromInline
enum VectorMath {
    @inlinable
    static func exp(_ x0: SIMD8<Float>) -> SIMD8<Float> {
        let x = x0.clamped(lowerBound: SIMD8(repeating: -87.3), upperBound: SIMD8(repeating: 88.3))
        // NaN lanes would trap in the integer conversion: give them 0 there; they stay NaN through `r`.
        let n = (x * 1.442_695_04).rounded(.toNearestOrEven).replacing(with: 0, where: x .!= x)
        let r = x - n * 0.693_359_375 + n * 2.121_944_40e-4
        var p = SIMD8<Float>(repeating: 1.987_569_150_0e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        let y = p * r * r + r + 1
        let exponent = (SIMD8<Int32>(n, rounding: .towardZero) &+ 127) &<< 23
        return y * unsafeBitCast(exponent, to: SIMD8<Float>.self)
    }

    @inlinable
    static func sigmoid(_ x: SIMD8<Float>) -> SIMD8<Float> {
        1 / (1 + exp(-x))
    }

    @inlinable
    static func tanh(_ x: SIMD8<Float>) -> SIMD8<Float> {
        // Near zero a polynomial keeps the relative error small; elsewhere 1 − 2 / (e^{2|x|} + 1).
        let z = x * x
        var p = SIMD8<Float>(repeating: -5.704_988_727_45e-3)
        p = p * z + 2.063_908_879_54e-2
        p = p * z - 5.373_971_555_31e-2
        p = p * z + 1.333_144_220_36e-1
        p = p * z - 3.333_328_194_22e-1
        let small = p * z * x + x
        let ax = pointwiseMax(x, -x)
        var large = 1 - 2 / (exp(ax + ax) + 1)
        large = large.replacing(with: -large, where: x .< 0)
        return small.replacing(with: large, where: ax .>= 0.625)
    }
}

/// OpenBLAS settings that matter to timing.
public enum BLAS {
    /// OpenBLAS's build configuration (version, kernel, thread model).
    public static var configuration: String { String(cString: openblas_get_config()) }

    /// Threads OpenBLAS may use per call. The service steps small batches, where threads cost more than they give.
    public static func setThreads(_ count: Int) { openblas_set_num_threads(Int32(count)) }
}
