// nio-http over TLS: SwiftNIO + NIOSSL (BoringSSL), one event loop, the
// same greeting handler and bootstrap as nio-http (NIOGreeting), with
// NIOSSLServerHandler first in every connection's pipeline. NIOSSL's default
// server configuration: TLS 1.2 minimum, its default cipher suites.
//
//   nio-https CERT.pem KEY.pem [PORT]     (prints "nio-https listening on 127.0.0.1:PORT")
import NIOCore
import NIOGreeting
import NIOPosix
import NIOSSL

#if canImport(Glibc)
import Glibc
#endif

/// Says why on standard error and exits with `status`.
func exit(_ status: Int32, saying message: String) -> Never {
    var line = message + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(status)
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count == 2 || arguments.count == 3, arguments.count == 2 || Int(arguments[2]) != nil else {
    exit(2, saying: "usage: nio-https CERT.pem KEY.pem [PORT]   (PEM files; PORT 0 or none picks a free one)")
}
let context: NIOSSLContext
do {
    let chain = try NIOSSLCertificate.fromPEMFile(arguments[0]).map { NIOSSLCertificateSource.certificate($0) }
    let key = try NIOSSLPrivateKey(file: arguments[1], format: .pem)
    context = try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
} catch {
    exit(1, saying: "nio-https: cannot load certificate \(arguments[0]) and key \(arguments[1]): \(error)")
}
let port = arguments.count == 3 ? Int(arguments[2])! : 0
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let channel = try greetingServerBootstrap(group: group) { channel in
    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
}
.bind(host: "127.0.0.1", port: port)
.wait()
print("nio-https listening on 127.0.0.1:\(channel.localAddress?.port ?? 0)")
fflush(nil)  // the line goes to a pipe: block-buffered otherwise
try channel.closeFuture.wait()
