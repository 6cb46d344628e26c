import Foundation

/// A float32 tensor as it is stored in a safetensors file.
public struct StoredTensor: Equatable, Sendable {
    public var shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count)
        self.shape = shape
        self.values = values
    }
}

/// Reader and writer of the safetensors container (F32 tensors and a string metadata map).
///
/// Writing is deterministic: tensors in name order, the header padded with spaces to a multiple of 8,
/// so that a file read and written again is byte-identical.
public enum Safetensors {
    static let maxHeaderBytes = 100 << 20

    public static func read(_ input: Data) throws -> (tensors: [String: StoredTensor], metadata: [String: String]) {
        let data = input.startIndex == 0 ? input : Data(Array(input))
        guard data.count >= 8 else { throw ModelError.notSafetensors("\(data.count) bytes is too short for a header") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) }
        guard headerLength <= UInt64(min(maxHeaderBytes, data.count - 8)) else {
            throw ModelError.notSafetensors("header length \(headerLength) exceeds the file (\(data.count) bytes)")
        }
        let bodyStart = 8 + Int(headerLength)
        let header: Any
        do {
            header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<bodyStart))
        } catch {
            throw ModelError.notSafetensors("header is not JSON")
        }
        guard let entries = header as? [String: Any] else { throw ModelError.notSafetensors("header is not a JSON object") }

        var metadata: [String: String] = [:]
        var tensors: [String: StoredTensor] = [:]
        let bodyCount = data.count - bodyStart
        for (name, entry) in entries {
            if name == "__metadata__" {
                guard let map = entry as? [String: Any] else { throw ModelError.notSafetensors("__metadata__ is not an object") }
                for (key, value) in map {
                    guard let string = value as? String else {
                        throw ModelError.notSafetensors("metadata \"\(key)\" is not a string")
                    }
                    metadata[key] = string
                }
                continue
            }
            guard let info = entry as? [String: Any],
                  let dtype = info["dtype"] as? String,
                  let shape = integers(info["shape"]), let offsets = integers(info["data_offsets"]), offsets.count == 2
            else { throw ModelError.notSafetensors("tensor \"\(name)\" lacks dtype, or an integer shape or data_offsets") }
            guard dtype == "F32" else {
                throw ModelError.wrongFormat("tensor \"\(name)\" has dtype \(dtype); dinop/1 stores F32 only")
            }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= bodyCount else {
                throw ModelError.notSafetensors("tensor \"\(name)\" has offsets \(offsets) outside the data (\(bodyCount) bytes)")
            }
            guard let count = checkedProduct(shape + [4]).map({ $0 / 4 }) else {
                throw ModelError.notSafetensors("tensor \"\(name)\" has an impossible shape \(shape)")
            }
            guard offsets[1] - offsets[0] == count * 4 else {
                throw ModelError.notSafetensors("tensor \"\(name)\" of shape \(shape) needs \(count * 4) bytes, has \(offsets[1] - offsets[0])")
            }
            var values = [Float](repeating: 0, count: count)
            _ = values.withUnsafeMutableBytes { out in
                data.copyBytes(to: out, from: (bodyStart + offsets[0])..<(bodyStart + offsets[1]))
            }
            tensors[name] = StoredTensor(shape: shape, values: values.map { Float(bitPattern: UInt32(littleEndian: $0.bitPattern)) })
        }
        return (tensors, metadata)
    }

    public static func write(tensors: [String: StoredTensor], metadata: [String: String]) -> Data {
        let names = tensors.keys.sorted()
        var offset = 0
        var fields: [String] = []
        if !metadata.isEmpty {
            let map = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            fields.append("\"__metadata__\":{\(map.joined(separator: ","))}")
        }
        for name in names {
            let tensor = tensors[name]!
            let end = offset + tensor.values.count * 4
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            fields.append("\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var header = Array("{\(fields.joined(separator: ","))}".utf8)
        while (8 + header.count) % 8 != 0 { header.append(UInt8(ascii: " ")) }

        var data = Data(capacity: 8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: header)
        for name in names {
            tensors[name]!.values.map { $0.bitPattern.littleEndian }.withUnsafeBytes { data.append(contentsOf: $0) }
        }
        return data
    }

    /// A JSON array of non-negative integers (2.5 is refused, not truncated), or nil.
    static func integers(_ value: Any?) -> [Int]? {
        guard let array = value as? [Any] else { return nil }
        var out: [Int] = []
        for element in array {
            guard let number = element as? NSNumber, let int = Int(exactly: number.doubleValue),
                  int >= 0 else { return nil }
            out.append(int)
        }
        return out
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
