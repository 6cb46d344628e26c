/// Errors of the model layer. Each case carries a message meant for the person who runs the command.
public enum ModelError: Error, Equatable, CustomStringConvertible {
    case invalidConfig(String)
    case notSafetensors(String)
    case wrongFormat(String)
    case missingTensor(String)
    case shapeMismatch(name: String, expected: [Int], found: [Int])
    /// The file is well formed, but its weights cannot serve (non-finite predictions for ordinary inputs).
    case unusable(String)

    public var description: String {
        switch self {
        case .invalidConfig(let why): "invalid model config: \(why)"
        case .notSafetensors(let why): "not a safetensors file: \(why)"
        case .wrongFormat(let why): "not a DINOP weight file (dinop/1, or dinop/2 with extensions): \(why)"
        case .missingTensor(let name): "weight file lacks tensor \"\(name)\""
        case .shapeMismatch(let name, let expected, let found):
            "tensor \"\(name)\" has shape \(found), the config requires \(expected)"
        case .unusable(let why): "unusable weights: \(why)"
        }
    }
}
