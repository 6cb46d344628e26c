#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// sd_notify(3) without libsystemd: state lines (`READY=1`, `WATCHDOG=1`, `STOPPING=1`) as datagrams to the unix
/// socket systemd names in `NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`).
public struct SystemdNotifier: Sendable {
    public let socket: String
    /// Half the watchdog period (`WATCHDOG_USEC`): how often to ping; nil when systemd watches no watchdog for
    /// this process (unset, or `WATCHDOG_PID` names another one).
    public let pingInterval: Double?
    /// The whole watchdog period, in seconds.
    public let watchdogPeriod: Double?

    /// nil when `NOTIFY_SOCKET` is unset or empty: not started by systemd as `Type=notify`.
    public init?(environment: [String: String]) {
        guard let socket = environment["NOTIFY_SOCKET"], !socket.isEmpty else { return nil }
        let forThisProcess = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        let period = environment["WATCHDOG_USEC"].flatMap(UInt64.init).flatMap { $0 > 0 && forThisProcess ? Double($0) / 1e6 : nil }
        self.init(socket: socket, watchdogPeriod: period)
    }

    public init(socket: String, watchdogPeriod: Double?) {
        self.socket = socket
        self.watchdogPeriod = watchdogPeriod
        pingInterval = watchdogPeriod.map { $0 / 2 }
    }

    public struct NotifyError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Sends one state line; throws why not (systemd gone, a path too long).
    public func send(_ state: String) throws {
        let abstract = socket.hasPrefix("@")
        // An abstract name starts with a NUL byte instead of the '@'; a path is NUL-terminated.
        let name: [UInt8] = abstract ? [0] + Array(socket.utf8.dropFirst()) : Array(socket.utf8) + [0]
        var address = sockaddr_un()
        guard name.count <= MemoryLayout.size(ofValue: address.sun_path) else {
            throw NotifyError(description: "NOTIFY_SOCKET \(socket): longer than a unix socket address")
        }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: name) }
        // An abstract address's length counts its bytes exactly; a path's its terminating NUL too.
        let length = socklen_t((MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2) + name.count)

        let fd = Self.datagramSocket()
        guard fd >= 0 else { throw NotifyError(description: "socket: \(Self.errorText())") }
        defer { close(fd) }
        let bytes = Array(state.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddress in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sockaddress, length) }
            }
        }
        guard sent == bytes.count else { throw NotifyError(description: "send \(state) to \(socket): \(Self.errorText())") }
    }

    static func datagramSocket() -> Int32 {
        #if canImport(Glibc)
        Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        Darwin.socket(AF_UNIX, SOCK_DGRAM, 0)
        #endif
    }

    static func errorText() -> String { String(cString: strerror(errno)) }
}
