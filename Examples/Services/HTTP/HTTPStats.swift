import Reactor
/// The service's own counters, shown by `/stats` next to the runtime's.
struct HTTPCounters {
    var connectionsAccepted: UInt64 = 0
    var requests: UInt64 = 0
    /// Requests refused before routing: malformed, too large, too slow.
    var rejected: UInt64 = 0
    /// Connections closed for a slow request (408) or idleness.
    var timedOut: UInt64 = 0
}

extension HTTPService {
    /// `/stats`: this runtime's counters (``Context/statistics``), the
    /// service's, and every registered resource (``Context/resourceInfo``).
    /// Built with plain string appends: it is not on the hot path, and a
    /// JSON encoder would pull in Foundation for four kinds of values.
    func statsJSON(context: Context) -> String {
        let runtime = context.statistics
        var json = "{\"runtime\":\(index),\"threads\":\(threadCount),\"backend\":\"\(backendName)\""
        json += ",\"statistics\":{\"loopTurns\":\(runtime.loopTurns),\"eventsDispatched\":\(runtime.eventsDispatched)"
        json += ",\"staleEventsDropped\":\(runtime.staleEventsDropped),\"timersFired\":\(runtime.timersFired)"
        json += ",\"commandsDelivered\":\(runtime.commandsDelivered)}"
        json += ",\"http\":{\"connectionsAccepted\":\(counters.connectionsAccepted),\"connectionsOpen\":\(connections.count)"
        json += ",\"requests\":\(counters.requests),\"rejected\":\(counters.rejected),\"timedOut\":\(counters.timedOut)}"
        json += ",\"resources\":["
        for (n, info) in context.resourceInfo.enumerated() {
            if n > 0 { json += "," }
            json += "{\"id\":\(info.id.sequence),\"fd\":\(info.fd),\"kind\":\(jsonString(info.kind))"
            json += ",\"interest\":\"\(info.interest)\",\"bytesIn\":\(info.bytesIn),\"bytesOut\":\(info.bytesOut)}"
        }
        json += "]}\n"
        return json
    }

    /// A JSON string literal; resource kinds are plain ASCII today, but a
    /// subclass may name itself anything.
    private func jsonString(_ text: String) -> String {
        var quoted = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                quoted += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: quoted.unicodeScalars.append(scalar)
            }
        }
        return quoted + "\""
    }
}
