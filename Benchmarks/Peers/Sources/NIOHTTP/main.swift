// A SwiftNIO HTTP/1.1 server answering every request with the same greeting
// as swift-reactor's `http` example (`Hello, World!`, keep-alive), on one
// event loop — the minimal server a NIO user would write.
//
//   nio-http [PORT]     (prints "nio-http listening on 127.0.0.1:PORT")
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

final class GreetingHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
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

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

let port = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 0
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let channel = try ServerBootstrap(group: group)
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
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true)
            try channel.pipeline.syncOperations.addHandler(GreetingHandler())
        }
    }
    .bind(host: "127.0.0.1", port: port)
    .wait()
print("nio-http listening on 127.0.0.1:\(channel.localAddress?.port ?? 0)")
fflush(nil)  // the line goes to a pipe: block-buffered otherwise
try channel.closeFuture.wait()
