import ProtocolRESP
import ProtocolHTTP1
import Reactor

/// The `links` URL shortener's routes, on the HTTP server of the `http`
/// example, with one ``RedisClient`` per runtime:
///
/// - `POST /links` with a URL as the body: `INCR links:next` makes the id,
///   its base-36 form is the code, `SET links:code:CODE URL` stores it;
///   answers `201 {"code":"…","url":"…"}`.
/// - `GET /CODE`: `GET links:code:CODE`, then `302` with that `Location`
///   (or `404`), and the hit is counted (`INCR links:hits:CODE`, `INCR links:hits`).
/// - `GET /stats`: every runtime's hit total from redis, and this runtime's
///   counters (its own, the HTTP server's, the RESP client's, the loop's).
///
/// Redis unreachable or failing: `503` with a JSON body saying why (the
/// client's error, naming the command); the client reconnects by itself,
/// so the service recovers when redis does.
final class LinksApplication: HTTPApplication {
    let configuration: LinksConfiguration
    let redis: RedisClient
    private weak var service: HTTPService?
    private var counters = (created: UInt64(0), redirects: UInt64(0), notFound: UInt64(0), unavailable: UInt64(0))

    /// The longest URL accepted (bodies are bounded before this by the HTTP configuration).
    static let maxURLLength = 4096

    init(configuration: LinksConfiguration) {
        self.configuration = configuration
        redis = RedisClient(host: configuration.redisHost, port: configuration.redisPort, options: configuration.redis)
    }

    func started(service: HTTPService, context: Context) {
        self.service = service
        do {
            try redis.start(context: context)
        } catch {
            // Only an eventfd can fail here (out of descriptors): every request will say 503.
            context.logger.error("links: redis client not started: \(error)")
        }
    }

    func keepsBody(method: HTTPMethod, path: UnsafeRawBufferPointer) -> Bool { method == .post }

    func handle(_ request: HTTPRequest, response: HTTPResponse, context: Context) {
        switch (request.method, request.path) {
        case (.post, "/links"):
            create(request.body, response: response)
        case (.get, "/stats"):
            stats(response: response, context: context)
        case (_, "/links"):
            response.send(.methodNotAllowed, body: "{\"error\":\"POST a URL to /links\"}\n")
        case (.get, _) where LinksApplication.isCode(request.path.dropFirst()):
            redirect(code: String(request.path.dropFirst()), response: response)
        case (.get, _), (.head, _):
            counters.notFound &+= 1
            response.send(.notFound, body: "{\"error\":\"no such link\"}\n")
        default:
            response.send(.notFound, body: "{\"error\":\"no such route\"}\n")
        }
    }

    // MARK: Routes

    private func create(_ body: [UInt8], response: HTTPResponse) {
        let url = String(decoding: body, as: UTF8.self).trimmingWhitespace
        guard LinksApplication.isURL(url) else {
            response.send(.badRequest, body: "{\"error\":\"the body must be an http:// or https:// URL of at most \(LinksApplication.maxURLLength) bytes, without spaces\"}\n")
            return
        }
        redis.send(["INCR", "links:next"]) { [self] result in
            guard case .success(.integer(let id)) = result else { return unavailable(result, response) }
            let code = String(id, radix: 36)
            redis.send(["SET", "links:code:\(code)", url]) { [self] result in
                guard case .success = result else { return unavailable(result, response) }
                counters.created &+= 1
                response.send(.created, body: "{\"code\":\(LinksApplication.json(code)),\"url\":\(LinksApplication.json(url))}\n")
            }
        }
    }

    private func redirect(code: String, response: HTTPResponse) {
        redis.send(["GET", "links:code:\(code)"]) { [self] result in
            switch result {
            case .success(.bulkString(let bytes?)):
                counters.redirects &+= 1
                let url = String(decoding: bytes, as: UTF8.self)
                response.send(.found, body: "{\"location\":\(LinksApplication.json(url))}\n", location: url)
                // Counted after the answer: a hit that cannot be counted still redirects.
                redis.send(["INCR", "links:hits:\(code)"]) { _ in }
                redis.send(["INCR", "links:hits"]) { _ in }
            case .success(.bulkString(nil)):
                counters.notFound &+= 1
                response.send(.notFound, body: "{\"error\":\"no such link\",\"code\":\(LinksApplication.json(code))}\n")
            default:
                unavailable(result, response)
            }
        }
    }

    private func stats(response: HTTPResponse, context: Context) {
        redis.send(["GET", "links:hits"]) { [self] result in
            let hits: String
            switch result {
            case .success(let value): hits = value.integer.map(String.init) ?? "0"
            case .failure: hits = "null"  // redis down: the counters below still say what this runtime did
            }
            response.send(.ok, body: statsJSON(hits: hits, context: context))
        }
    }

    private func unavailable(_ result: Result<RESPValue, RedisError>, _ response: HTTPResponse) {
        counters.unavailable &+= 1
        let detail: String
        switch result {
        case .failure(let error): detail = error.description
        case .success(let value): detail = "unexpected reply \(value)"
        }
        response.send(.serviceUnavailable, body: "{\"error\":\"storage unavailable\",\"detail\":\(LinksApplication.json(detail))}\n")
    }

    private func statsJSON(hits: String, context: Context) -> String {
        let loop = context.statistics
        let client = redis.counters
        var json = "{\"hits\":\(hits)"
        json += ",\"runtime\":{\"index\":\(service?.index ?? 0),\"threads\":\(service?.threadCount ?? 1),\"backend\":\"\(service?.backendName ?? "")\""
        json += ",\"loopTurns\":\(loop.loopTurns),\"eventsDispatched\":\(loop.eventsDispatched),\"timersFired\":\(loop.timersFired)"
        json += ",\"resources\":\(context.resourceCount)}"
        json += ",\"links\":{\"created\":\(counters.created),\"redirects\":\(counters.redirects),\"notFound\":\(counters.notFound)"
        json += ",\"unavailable\":\(counters.unavailable)}"
        if let http = service?.counters {
            json += ",\"http\":{\"connectionsAccepted\":\(http.connectionsAccepted),\"requests\":\(http.requests)"
            json += ",\"rejected\":\(http.rejected),\"timedOut\":\(http.timedOut)}"
        }
        json += ",\"redis\":{\"state\":\"\(redis.state)\",\"sent\":\(client.sent),\"replies\":\(client.replies)"
        json += ",\"failed\":\(client.failed),\"connects\":\(client.connects),\"pending\":\(redis.pendingCount)}}\n"
        return json
    }

    // MARK: Checks and JSON

    /// A code is what `String(id, radix: 36)` makes: 1 to 13 of `0-9a-z`.
    static func isCode(_ text: Substring) -> Bool {
        !text.isEmpty && text.utf8.count <= 13 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) }
    }

    /// An absolute http(s) URL with no white space or control characters
    /// (so it can go into a `Location` header as it is).
    static func isURL(_ text: String) -> Bool {
        let bytes = text.utf8
        guard bytes.count <= maxURLLength, text.hasPrefix("http://") || text.hasPrefix("https://") else { return false }
        return bytes.count > 8 && bytes.allSatisfy { $0 > 0x20 && $0 != 0x7F }
    }

    /// A JSON string literal of `text`.
    static func json(_ text: String) -> String {
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

extension String {
    /// Without leading and trailing spaces, tabs and line ends (`curl -d @file` keeps a final newline).
    var trimmingWhitespace: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
