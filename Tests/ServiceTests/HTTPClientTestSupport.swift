// Helpers of the HTTP client tests: a runtime on the test thread, Debian's
// nginx with a generated configuration, and a raw-socket server that
// answers whatever bytes a test gives it.
import Foundation
import ProtocolHTTP1
import Reactor
import ReactorTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` with a client on a runtime of `backend` on this thread until
/// it calls `done`; a runtime still running after `timeout` is stopped and
/// the test fails (nothing hangs).
func withHTTPClient(_ backend: Backend, configuration: HTTPClientConfiguration = HTTPClientConfiguration(),
                    timeout: Duration = .seconds(60),
                    _ body: @escaping (HTTPClient, @escaping () -> Void) -> Void) throws {
    struct Run: PollerVisitor {
        let configuration: HTTPClientConfiguration
        let timeout: Duration
        let body: (HTTPClient, @escaping () -> Void) -> Void
        func visit<P: Poller>(_ type: P.Type) throws {
            let runtime = try Runtime<P, LoggingService>(service: LoggingService())
            let context = runtime.context
            let client = HTTPClient(context: context, configuration: configuration)
            var finished = false
            body(client) {
                finished = true
                context.stop()
            }
            // A guard: a timer on an idle eventfd stops the loop if the work never finishes.
            let guardCounter = try EventCounter()
            guardCounter.handler = Watch()
            try context.register(guardCounter)
            _ = context.schedule(after: timeout, for: guardCounter)
            if !finished { try runtime.run() }
            if !finished { throw TestFailure("the client's work did not finish within \(timeout) (\(P.name))") }
        }
    }
    try backend.visit(Run(configuration: configuration, timeout: timeout, body: body))
}

/// Stops the runtime when its eventfd's timer fires: the HTTP client tests' guard.
private final class Watch: ResourceHandler {
    func handle(_ event: ResourceEvent, on resource: EventCounter, context: Context) {
        if case .timerFired = event { context.stop() }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
func freeLoopbackPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard ok else { throw TestFailure("no free TCP port") }
    return UInt16(bigEndian: address.sin_port)
}

/// nginx in the foreground on a loopback port, serving generated files from
/// a temporary root: `empty` (0 B), `1k`, `10m` (random bytes) and
/// `ssi/page.html` (1 MiB of text that nginx's SSI filter sends chunked).
/// The access log records `$connection` per request, to see reuse.
final class TestNginx {
    let port: UInt16
    let directory: URL
    let child: ChildProcess
    let files: [String: [UInt8]]

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-nginx-\(UUID().uuidString)")
        let root = directory.appendingPathComponent("root")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("ssi"), withIntermediateDirectories: true)
        let text = (0..<(1 << 20)).map { UInt8(ascii: "a") + UInt8($0 % 26) }.enumerated().map { $0.offset % 64 == 63 ? 0x0A : $0.element }
        files = ["empty": [], "1k": randomBytes(1024), "10m": randomBytes(10 << 20), "ssi/page.html": text]
        for (name, bytes) in files { try Data(bytes).write(to: root.appendingPathComponent(name)) }
        port = try freeLoopbackPort()
        let d = directory.path
        let config = """
            daemon off; master_process off; worker_processes 1;
            pid \(d)/nginx.pid; error_log \(d)/error.log warn;
            events { worker_connections 64; }
            http {
                log_format conn '$connection $request_uri';
                access_log \(d)/access.log conn;
                client_body_temp_path \(d)/body; proxy_temp_path \(d)/proxy; fastcgi_temp_path \(d)/fastcgi;
                uwsgi_temp_path \(d)/uwsgi; scgi_temp_path \(d)/scgi;
                default_type application/octet-stream;
                server {
                    listen 127.0.0.1:\(port);
                    root \(root.path);
                    location /ssi/ { ssi on; }
                    location = /moved { return 302 /1k; }
                }
            }
            """
        let file = directory.appendingPathComponent("nginx.conf")
        try config.write(to: file, atomically: true, encoding: .utf8)
        let nginx = Executables.find("nginx") ?? URL(fileURLWithPath: "/usr/sbin/nginx")
        child = try ChildProcess(executable: nginx, arguments: ["-p", d, "-c", file.path], standardError: .file)
        let port = self.port
        guard eventually(within: .seconds(10), { (try? connectToLoopback(port: port)).map { close($0); return true } ?? false }) else {
            let log = (try? String(contentsOf: directory.appendingPathComponent("error.log"), encoding: .utf8)) ?? ""
            child.stop()
            throw TestFailure("nginx did not listen on \(port): \(log)\(child.readStandardError())")
        }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// The access log's lines: `connection-number request-uri`.
    func accessLog() -> [String] {
        let text = (try? String(contentsOf: directory.appendingPathComponent("access.log"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }

    deinit {
        child.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A server of raw sockets: accepts one connection, reads the request head,
/// writes `response`, then waits up to `hold` (or until the client closes) and closes. Bytes chosen by the
/// test, so it can answer what no real server would.
final class RawHTTPResponder {
    let port: UInt16
    private let thread: TestThread

    init(response: [UInt8], hold: Duration = .zero) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 4) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        guard ok else { close(listener); throw TestFailure("raw responder: bind failed, errno \(errno)") }
        port = UInt16(bigEndian: address.sin_port)
        thread = try TestThread {
            defer { close(listener) }
            guard (try? waitReady(listener, Int16(POLLIN), until: .now + .seconds(20), what: "accept")) != nil else { return }
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { return }
            defer { close(fd) }
            var request: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while request.firstRange(of: Array("\r\n\r\n".utf8)) == nil {
                guard (try? waitReady(fd, Int16(POLLIN), until: .now + .seconds(10), what: "read")) != nil else { return }
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { return }
                request += chunk[..<n]
            }
            var offset = 0
            while offset < response.count {
                let n = response.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { return }
                offset += n
            }
            // Holds the connection until the client ends it (its end of file makes the socket readable) or `hold` passes.
            if hold > .zero { _ = try? waitReady(fd, Int16(POLLIN), until: .now + hold, what: "the client's end") }
        }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    deinit { thread.join() }
}
