/// Text from input, quoted for a message: control characters are escaped (`\u{0}`), bytes that are not UTF-8
/// are shown as `\xFF`, and anything past `limit` characters is cut with `…`, so that a NUL or a stray 0xFF in an
/// event never reaches a terminal, a log line or a dead letter's reason raw.
public func quoted(_ input: some Collection<UInt8>, limit: Int = 80) -> String {
    let bytes = Array(input)
    var out = "\"", shown = 0, i = 0
    while i < bytes.count, shown < limit {
        shown += 1
        if let (scalar, length) = scalar(in: bytes, at: i) {
            i += length
            switch scalar.value {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0..<0x20, 0x7F..<0xA0: out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
        } else {
            out += "\\x" + String(bytes[i], radix: 16, uppercase: true)
            i += 1
        }
    }
    return out + (i < bytes.count ? "…\"" : "\"")
}

public func quoted(_ text: String, limit: Int = 80) -> String { quoted(Array(text.utf8), limit: limit) }

/// The UTF-8 scalar starting at `i` and its length in bytes; nil when the bytes there are not one.
private func scalar(in bytes: [UInt8], at i: Int) -> (Unicode.Scalar, Int)? {
    let lead = bytes[i]
    if lead < 0x80 { return (Unicode.Scalar(lead), 1) }
    let (length, minimum): (Int, UInt32)
    switch lead {
    case 0xC2...0xDF: (length, minimum) = (2, 0x80)
    case 0xE0...0xEF: (length, minimum) = (3, 0x800)
    case 0xF0...0xF4: (length, minimum) = (4, 0x10000)
    default: return nil
    }
    guard i + length <= bytes.count else { return nil }
    var value = UInt32(lead) & (0xFF >> (length + 1))
    for k in 1..<length {
        let byte = bytes[i + k]
        guard byte & 0xC0 == 0x80 else { return nil }
        value = value << 6 | UInt32(byte & 0x3F)
    }
    guard value >= minimum, let scalar = Unicode.Scalar(value) else { return nil }
    return (scalar, length)
}
