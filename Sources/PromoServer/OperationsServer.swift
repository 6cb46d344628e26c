import Foundation
import Hummingbird
import Logging
import Prometheus
import PromoEvents
import PromoService

/// The HTTP endpoints an operator and the orchestrator read: `/metrics` (Prometheus text), `/health` (the member's
/// loop runs), `/ready` (its assigned partitions are restored and consuming; 503 with the reason otherwise).
public enum OperationsServer {
    public static func application(host: String, port: Int, registry: PrometheusCollectorRegistry,
                                   health: ServiceHealth, logger: Logger) -> some ApplicationProtocol {
        let router = Router()
        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.get("health") { _, _ in
            let alive = health.snapshot.alive
            return Response(status: alive ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: "{\"alive\":\(alive)}\n")))
        }
        router.get("ready") { _, _ in
            let state = health.snapshot
            var w = JSONWriter()
            w.beginObject()
            w.field("ready", state.ready)
            for (name, partitions) in [("assigned", state.assigned), ("restored", state.restored)] {
                w.key(name)
                w.beginArray()
                for p in partitions { w.integer(Int64(p)) }
                w.endArray()
            }
            w.field("waiting_for", state.waitingFor)
            w.endObject()
            return Response(status: state.ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: w.bytes + [10])))
        }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "promo"),
                           logger: logger)
    }
}
