// The greeting both SwiftNIO HTTP peers answer (nio-http in plain text,
// nio-https over NIOSSL), so the two differ in TLS and nothing else: every
// request gets `Hello, World!`, keep-alive unless the client asks to close.
import NIOCore
import NIOHTTP1
import NIOPosix

/// Answers every request with the greeting, as swift-reactor's `http`
/// example does; closes after the response when the request was not
/// keep-alive.
public final class GreetingHandler: ChannelInboundHandler, Sendable {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundOut = HTTPServerResponsePart

    /// One handler per connection.
    public init() {}

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data) else {
            if case .end = unwrapInboundIn(data) { respond(context: context) }
            return
        }
        keepAlive = request.isKeepAlive
    }

    // One connection per handler instance, on one event loop thread.
    nonisolated(unsafe) private var keepAlive = true

    private func respond(context: ChannelHandlerContext) {
        var body = context.channel.allocator.buffer(capacity: 13)
        body.writeStaticString("Hello, World!")
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let keepAlive = self.keepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [channel = context.channel] _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// The bootstrap both peers use: one event loop, a deep accept backlog,
/// `TCP_NODELAY`; `secure` adds the connection's first handlers (TLS) ahead
/// of the HTTP/1.1 pipeline and the greeting.
public func greetingServerBootstrap(group: EventLoopGroup,
                                    secure: (@Sendable (Channel) throws -> Void)? = nil) -> ServerBootstrap {
    ServerBootstrap(group: group)
        .serverChannelOption(.backlog, value: 1024)
        // NIO accepts 4 connections per wake-up by default; at 10,000 connections
        // arriving at once the kernel's accept queue overflowed and connections
        // were reset. Accepting up to 64 per wake-up keeps up, as our listener
        // (accept until EAGAIN) and the C reference do.
        .serverChannelOption(.maxMessagesPerRead, value: 64)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try secure?(channel)
                try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true)
                try channel.pipeline.syncOperations.addHandler(GreetingHandler())
            }
        }
}
