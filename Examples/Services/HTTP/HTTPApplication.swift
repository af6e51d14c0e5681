import ProtocolHTTP1
import Reactor

/// Routes of a service built on this HTTP server other than the `http`
/// example's own (the `links` shortener's): when a service has one, every
/// request goes to it instead of ``HTTPRoute``.
///
/// A request is answered now or later. Now: call ``HTTPResponse/send`` before
/// ``handle(_:response:context:)`` returns, and the answer joins the
/// batch. Later — after a database reply, say — keep the response and
/// call `send` then, on the runtime's thread: the connection reads no
/// further request until then (responses must leave in request order),
/// and pipelined requests already read are served once it is sent.
/// `send` must be called exactly once, or the connection waits forever; an
/// application that waits on something fallible has a timeout there (the
/// RESP client's per-command timeout, for `links`).
protocol HTTPApplication: AnyObject {
    /// The runtime started (the service has registered its listeners).
    func started(service: HTTPService, context: Context)
    /// Whether a request keeps its body (the others read and drop it).
    func keepsBody(method: HTTPMethod, path: UnsafeRawBufferPointer) -> Bool
    /// Answers one request, now or later.
    func handle(_ request: HTTPRequest, response: HTTPResponse, context: Context)
}

/// One request as an ``HTTPApplication`` gets it: copied out of the read
/// buffer, because an answer given later outlives those bytes.
struct HTTPRequest {
    let method: HTTPMethod
    /// The target's path, without its query.
    let path: String
    let body: [UInt8]
}

/// The answer to one request, given once: at once or later.
final class HTTPResponse {
    private weak var connection: HTTPConnection?
    private weak var context: Context?
    let connectionHeader: HTTPConnectionHeader
    /// True while the application's `handle` runs: an answer then joins the batch.
    var isImmediate = true
    private(set) var isSent = false

    init(connection: HTTPConnection, context: Context, connectionHeader: HTTPConnectionHeader) {
        self.connection = connection
        self.context = context
        self.connectionHeader = connectionHeader
    }

    /// Sends `status` with `body` (and a `Location` header, for a redirect).
    /// A connection that ended meanwhile drops it.
    func send(_ status: HTTPStatus, contentType: StaticString = "application/json", body: String, location: String? = nil) {
        guard !isSent else { return }
        isSent = true
        guard let connection, let context, connection.stream.isRegistered else { return }
        connection.service.writer.appendResponse(status, contentType: contentType, body: body, location: location,
                                                 connection: connectionHeader)
        if !isImmediate { connection.answered(context: context) }
    }
}
