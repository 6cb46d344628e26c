import ArgumentParser
internal import CJemalloc
import DINOP
import Foundation
import PromoKafka

/// Versions of the native libraries the binary runs on.
public enum NativeLibraries {
    public static var rdkafka: String { librdkafkaVersion }

    /// jemalloc's version as the allocator in use reports it; nil when malloc is not jemalloc.
    public static var jemalloc: String? {
        var version: UnsafePointer<CChar>?
        var size = MemoryLayout<UnsafePointer<CChar>?>.size
        guard mallctl("version", &version, &size, nil, 0) == 0, let version else { return nil }
        return String(cString: version)
    }

    public static var openBLAS: String { BLAS.configuration }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print library versions.")

    func run() {
        print("promo \(PromoVersion.current)")
        print("model format \(DINOPModel.format)")
        print("librdkafka \(NativeLibraries.rdkafka)")
        print("allocator jemalloc \(NativeLibraries.jemalloc ?? "not in use")")
        print("OpenBLAS \(NativeLibraries.openBLAS)")
    }
}

public enum PromoVersion {
    public static let current = "0.1.0"
}
