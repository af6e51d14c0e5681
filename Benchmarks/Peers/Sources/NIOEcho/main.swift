// A SwiftNIO echo server, written the way NIO's own example is: one event
// loop (one thread, like one swift-reactor runtime), a handler that writes
// back what it reads and flushes at the end of each read batch.
//
//   nio-echo [PORT]     (0 picks a free one; prints "nio-echo listening on 127.0.0.1:PORT")
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
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
        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
    }
    .bind(host: "127.0.0.1", port: port)
    .wait()
print("nio-echo listening on 127.0.0.1:\(channel.localAddress?.port ?? 0)")
fflush(nil)  // the line goes to a pipe: block-buffered otherwise
try channel.closeFuture.wait()
