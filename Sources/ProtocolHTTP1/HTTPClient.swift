import ReactorCore
import ReactorNames
import ReactorTLS

/// An HTTP/1.1 client for one runtime: keep-alive connections pooled per
/// scheme, host and port (at most ``HTTPClientConfiguration/maxConnectionsPerHost``,
/// requests beyond them queued), one request at a time per connection (no
/// pipelining), hosts connected by name through ``Context/connect(host:port:options:completion:)``
/// without blocking the loop, `https` through the stream's TLS.
///
/// Everything happens on the runtime's thread, callbacks included: make it
/// in a callback (or before `run()`) and keep it while requests are under way.
///
/// ```
/// let client = HTTPClient(context: context)
/// client.get("http://127.0.0.1:8080/") { result in print(result) }
/// ```
public final class HTTPClient {
    /// The limits and timeouts every request gets.
    public let configuration: HTTPClientConfiguration
    unowned let context: Context
    /// Heads are formatted here, one at a time.
    let output = HTTPOutputBuffer()
    private var pools: [String: Pool] = [:]
    private var tls: TLSConfiguration?
    /// Connections opened so far (a reused connection is not counted again).
    public private(set) var connectionsOpened = 0

    /// The connections of one scheme, host and port.
    private final class Pool {
        var idle: [HTTPClientConnection] = []
        /// Busy, idle and connecting.
        var open = 0
        var waiting: [HTTPExchange] = []
    }

    /// A client whose connections belong to `context`'s runtime.
    public init(context: Context, configuration: HTTPClientConfiguration = HTTPClientConfiguration()) {
        self.context = context
        self.configuration = configuration
        tls = configuration.tls
    }

    /// Idle connections kept for the next request, over every host.
    public var idleConnectionCount: Int { pools.values.reduce(0) { $0 + $1.idle.count } }

    // MARK: Requests

    /// Sends `request` and streams the response: `head` once the status
    /// line and fields are in, `body` with each run of body bytes as it
    /// arrives (decoded from its chunks; valid only during the call), then
    /// `completion` with the head, or the error that ended it.
    public func execute(_ request: HTTPClientRequest, head: @escaping (HTTPResponseHead) -> Void = { _ in },
                        body: @escaping (UnsafeRawBufferPointer) -> Void,
                        completion: @escaping (Result<HTTPResponseHead, HTTPClientError>) -> Void) {
        dispatch(HTTPExchange(request: request, onHead: head, onBody: { body($0); return true }, completion: completion))
    }

    /// Sends `request` and hands over the whole response once its body is
    /// in (at most ``HTTPClientConfiguration/maxBodyBytes`` of it).
    public func execute(_ request: HTTPClientRequest, completion: @escaping (Result<HTTPClientResponse, HTTPClientError>) -> Void) {
        final class Collected { var bytes: [UInt8] = [] }
        let collected = Collected()
        let limit = configuration.maxBodyBytes
        let exchange = HTTPExchange(request: request, onHead: { head in
            if let length = head.contentLength, length <= limit { collected.bytes.reserveCapacity(length) }
        }, onBody: { bytes in
            guard collected.bytes.count + bytes.count <= limit else { return false }
            collected.bytes.append(contentsOf: bytes)
            return true
        }, completion: { result in
            completion(result.map { HTTPClientResponse(head: $0, body: collected.bytes) })
        })
        dispatch(exchange)
    }

    /// `GET url`, the whole response. An unparsable URL fails at once, inside this call.
    public func get(_ url: String, followRedirects: Int = 0,
                    completion: @escaping (Result<HTTPClientResponse, HTTPClientError>) -> Void) {
        guard let parsed = HTTPURL(url) else {
            completion(.failure(HTTPClientError(.invalidRequest, request: "GET \(url)", detail: "not an http or https URL")))
            return
        }
        execute(HTTPClientRequest(url: parsed, followRedirects: followRedirects), completion: completion)
    }

    /// Closes the idle connections; busy ones finish their requests first.
    public func closeIdleConnections() {
        for pool in pools.values { for connection in pool.idle { connection.close() } }
    }

    // MARK: The pool

    /// Starts `exchange` on an idle connection, a new one, or queues it.
    func dispatch(_ exchange: HTTPExchange) {
        let key = exchange.request.url.poolKey
        let pool = pools[key] ?? Pool()
        pools[key] = pool
        if let connection = pool.idle.popLast() {
            connection.start(exchange)
        } else if pool.open < configuration.maxConnectionsPerHost {
            pool.open += 1
            open(key, for: exchange)
        } else {
            pool.waiting.append(exchange)
        }
    }

    private func open(_ key: String, for exchange: HTTPExchange) {
        let url = exchange.request.url
        var options = configuration.connect
        options.timeout = configuration.connectTimeout
        options.tls = nil
        if url.secure {
            do throws(TLSError) {
                if tls == nil { tls = try TLSConfiguration(client: TLSClientOptions()) }
            } catch {
                connectFailed(key, exchange, detail: "tls configuration: \(error)")
                return
            }
            if let tls { options.tls = StreamTLSOptions(configuration: tls, serverName: url.host) }
        }
        connectionsOpened += 1
        context.connect(host: url.host, port: url.port, options: options) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let stream):
                let connection = HTTPClientConnection(stream: stream, key: key, client: self)
                stream.handler = connection
                connection.start(exchange)
            case .failure(let error):
                self.connectFailed(key, exchange, detail: "\(error)")
            }
        }
    }

    private func connectFailed(_ key: String, _ exchange: HTTPExchange, detail: String) {
        pools[key]?.open -= 1
        exchange.completion(.failure(HTTPClientError(.connect, request: exchange.request.label, detail: detail)))
        pump(key)
    }

    /// A connection finished an exchange and can carry another.
    func release(_ connection: HTTPClientConnection) {
        guard let pool = pools[connection.key] else { return }
        if !pool.waiting.isEmpty {
            connection.start(pool.waiting.removeFirst())
        } else {
            pool.idle.append(connection)
        }
    }

    /// A connection closed: its place in the pool is free.
    func connectionEnded(_ connection: HTTPClientConnection) {
        guard let pool = pools[connection.key] else { return }
        pool.idle.removeAll { $0 === connection }
        pool.open -= 1
        pump(connection.key)
    }

    /// Opens a connection for the next waiting request, if there is room.
    private func pump(_ key: String) {
        guard let pool = pools[key] else { return }
        if !pool.waiting.isEmpty && pool.open < configuration.maxConnectionsPerHost {
            pool.open += 1
            open(key, for: pool.waiting.removeFirst())
        } else if pool.waiting.isEmpty && pool.open == 0 {
            pools[key] = nil
        }
    }
}
