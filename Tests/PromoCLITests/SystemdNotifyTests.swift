import Foundation
@testable import PromoServer
import PromoService
import ServiceLifecycle
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A unix datagram socket bound where systemd's would be, reading with a timeout instead of sleeping.
final class NotifySocket {
    let name: String
    private let fd: Int32

    /// `name`: a path, or an abstract name starting with '@'.
    init(_ name: String) throws {
        self.name = name
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes: [UInt8] = name.hasPrefix("@") ? [0] + Array(name.utf8.dropFirst()) : Array(name.utf8) + [0]
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t((MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2) + bytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        var timeout = timeval(tv_sec: 120, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard fd >= 0, bound == 0 else { throw SystemdNotifier.NotifyError(description: "bind \(name): \(String(cString: strerror(errno)))") }
    }

    deinit {
        close(fd)
        if !name.hasPrefix("@") { unlink(name) }
    }

    /// The next datagram, or nil when none arrives within the receive timeout (120 s, generous: the suite shares two cores with heavy tests).
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        return count >= 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : nil
    }

    /// Datagrams until `state` arrives (included); nil when it does not arrive.
    func receive(until state: String) -> [String]? {
        var seen: [String] = []
        while let next = receive() {
            seen.append(next)
            if next == state { return seen }
        }
        return nil
    }
}

@Suite("systemd notifications of promo run")
struct SystemdNotifyTests {
    static func socketPath() -> String { "/tmp/promo-notify-\(UUID().uuidString.prefix(8)).sock" }

    @Test("READY=1 once when ready, WATCHDOG=1 every interval only while the loop is alive")
    func schedule() {
        var schedule = NotifySchedule(pingInterval: 10)
        #expect(schedule.due(now: 0, ready: false, loopAlive: true) == ["WATCHDOG=1"])
        #expect(schedule.due(now: 5, ready: true, loopAlive: true) == ["READY=1"])
        #expect(schedule.due(now: 9.9, ready: true, loopAlive: true) == [])
        #expect(schedule.due(now: 10, ready: true, loopAlive: true) == ["WATCHDOG=1"])
        // A stuck loop: no ping, however long; the first round after it pings at once.
        #expect(schedule.due(now: 20, ready: false, loopAlive: false) == [])
        #expect(schedule.due(now: 45, ready: true, loopAlive: false) == [])
        #expect(schedule.due(now: 46, ready: true, loopAlive: true) == ["WATCHDOG=1"])
        var noWatchdog = NotifySchedule(pingInterval: nil)
        #expect(noWatchdog.due(now: 100, ready: true, loopAlive: true) == ["READY=1"])
    }

    @Test("NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID as systemd sets them")
    func environment() {
        #expect(SystemdNotifier(environment: [:]) == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": ""]) == nil)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "20000000"])
        #expect(notifier?.socket == "@x" && notifier?.pingInterval == 10 && notifier?.watchdogPeriod == 20)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "20000000",
                                              "WATCHDOG_PID": "\(getpid())"])?.pingInterval == 10)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "20000000",
                                              "WATCHDOG_PID": "\(getpid() + 1)"])?.pingInterval == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "soon"])?.pingInterval == nil)
    }

    /// The notifier's own thread, not a task: a test must not wait on the concurrency pool, which the suite's other
    /// tests may hold for minutes on two cores.
    @Test("the service's READY=1, WATCHDOG=1 and STOPPING=1 arrive on a socket in the file system")
    func datagramsArrive() throws {
        let socket = try NotifySocket(Self.socketPath())
        let ready = Mutex(false)
        let service = SystemdNotifyService(SystemdNotifier(socket: socket.name, watchdogPeriod: 0.2),
                                           logger: .init(label: "test"), isReady: { ready.withLock { $0 } },
                                           isLoopAlive: { true })
        let stop = StopSignal(), finished = DispatchSemaphore(value: 0)
        Thread {
            service.notify(until: stop)
            finished.signal()
        }.start()
        #expect(socket.receive() == "WATCHDOG=1")
        #expect(socket.receive() == "WATCHDOG=1")  // again after the interval, still not ready
        ready.withLock { $0 = true }
        let untilReady = try #require(socket.receive(until: "READY=1"))
        #expect(untilReady.dropLast().allSatisfy { $0 == "WATCHDOG=1" })
        stop.stop()
        let untilStopping = try #require(socket.receive(until: "STOPPING=1"))
        #expect(untilStopping.filter { $0 == "READY=1" }.isEmpty)  // ready is said once
        #expect(finished.wait(timeout: .now() + 60) == .success)
    }

    @Test("an abstract socket name ('@…') is reached")
    func abstractSocket() throws {
        let socket = try NotifySocket("@promo-notify-test-\(UUID().uuidString)")
        try SystemdNotifier(socket: socket.name, watchdogPeriod: nil).send("READY=1")
        #expect(socket.receive() == "READY=1")
    }

    @Test("a member counts as alive while starting, then only while its loop beat within the watchdog period")
    func memberLiveness() {
        let health = ServiceHealth()
        func alive(period: Double) -> Bool {
            SystemdNotifyService.member(health, notifier: SystemdNotifier(socket: "@unused", watchdogPeriod: period),
                                        logger: .init(label: "test")).isLoopAlive()
        }
        #expect(health.secondsSinceBeat == nil)
        #expect(alive(period: 0))  // starting: no beat yet
        health.beat()
        #expect(alive(period: 3600))
        // Any time since the beat is longer than a zero period: what a loop stuck for a whole period looks like.
        #expect(!alive(period: 0))
    }
}
