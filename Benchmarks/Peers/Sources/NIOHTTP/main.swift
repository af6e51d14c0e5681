// A SwiftNIO HTTP/1.1 server answering every request with the same greeting
// as swift-reactor's `http` example (`Hello, World!`, keep-alive), on one
// event loop — the minimal server a NIO user would write. The handler and
// the bootstrap are NIOGreeting's, shared with nio-https.
//
//   nio-http [PORT]     (prints "nio-http listening on 127.0.0.1:PORT")
import NIOCore
import NIOGreeting
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

let port = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 0
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let channel = try greetingServerBootstrap(group: group)
    .bind(host: "127.0.0.1", port: port)
    .wait()
print("nio-http listening on 127.0.0.1:\(channel.localAddress?.port ?? 0)")
fflush(nil)  // the line goes to a pipe: block-buffered otherwise
try channel.closeFuture.wait()
