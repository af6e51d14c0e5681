import ProtocolHTTP1
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// The service's routes, and what a request to one of them gets.
enum HTTPRoute {
    /// `GET /`: the greeting.
    case greeting
    /// `GET /stats`: the runtime's counters and resources, as JSON.
    case stats
    /// `POST /echo`: the request body back, with its Content-Type.
    case echo
    /// Any other path: `404`.
    case notFound

    /// The route of a path (the target without its query).
    static func of(_ path: UnsafeRawBufferPointer) -> HTTPRoute {
        switch path.count {
        case 1 where path[0] == UInt8(ascii: "/"): return .greeting
        case 5 where same(path, "/echo"): return .echo
        case 6 where same(path, "/stats"): return .stats
        default: return .notFound
        }
    }

    /// The methods the route answers, for `405`'s `Allow` header; nil for a
    /// path that does not exist.
    var allowed: StaticString? {
        switch self {
        case .greeting, .stats: return "GET, HEAD"
        case .echo: return "POST"
        case .notFound: return nil
        }
    }

    /// Whether the route answers `method`.
    func accepts(_ method: HTTPMethod) -> Bool {
        switch self {
        case .greeting, .stats: return method == .get || method == .head
        case .echo: return method == .post
        case .notFound: return false
        }
    }

    /// Whether the route keeps the request body (the others read and drop it).
    var needsBody: Bool { self == .echo }

    private static func same(_ bytes: UnsafeRawBufferPointer, _ text: StaticString) -> Bool {
        memcmp(bytes.baseAddress!, text.utf8Start, text.utf8CodeUnitCount) == 0
    }
}

/// What the handlers of a request may need besides the request itself.
struct HTTPRequestContext {
    let method: HTTPMethod
    let connection: HTTPConnectionHeader
    /// The request's Content-Type (offsets are already resolved), empty when absent.
    let contentType: UnsafeRawBufferPointer
}

extension HTTPService {
    /// Formats the response to one complete request into the output buffer.
    /// `body` is the request body (empty when there was none).
    func respond(to route: HTTPRoute, _ request: HTTPRequestContext, body: UnsafeRawBufferPointer, context: Context) {
        counters.requests &+= 1
        let writer = self.writer
        let headOnly = request.method == .head
        guard route.accepts(request.method) else {
            if let allow = route.allowed {
                writer.appendError(.methodNotAllowed, headOnly: headOnly, connection: request.connection, allow: allow)
            } else {
                writer.appendError(.notFound, headOnly: headOnly, connection: request.connection)
            }
            return
        }
        switch route {
        case .greeting:
            writer.appendGreeting(headOnly: headOnly, connection: request.connection)
        case .stats:
            var json = statsJSON(context: context)
            json.withUTF8 { bytes in
                let type: StaticString = "application/json"
                writer.appendOK(contentType: UnsafeRawBufferPointer(start: type.utf8Start, count: type.utf8CodeUnitCount),
                                body: UnsafeRawBufferPointer(bytes), headOnly: headOnly, connection: request.connection)
            }
        case .echo:
            if request.contentType.isEmpty {
                let type: StaticString = "application/octet-stream"
                writer.appendOK(contentType: UnsafeRawBufferPointer(start: type.utf8Start, count: type.utf8CodeUnitCount),
                                body: body, headOnly: false, connection: request.connection)
            } else {
                writer.appendOK(contentType: request.contentType, body: body, headOnly: false, connection: request.connection)
            }
        case .notFound:
            break  // not accepted above
        }
    }
}
