// Runs the built `chat` and `proxy` executables as a user would.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A running example executable with the port from its first line
/// (`NAME listening on 127.0.0.1:PORT...`).
struct ExampleServer {
    let child: ChildProcess
    let port: UInt16

    init(_ name: String, arguments: [String]) throws {
        child = try ChildProcess(executable: try Executables.product(name), arguments: arguments)
        port = try child.readListeningPort(name).port
    }
}

@Suite("chat and proxy examples")
struct ChatProxyExampleTests {
    @Test("chat: two members talk; a rename and a line reach the other", arguments: Backend.underTest)
    func chat(backend: Backend) throws {
        let server = try ExampleServer("chat", arguments: ["--backend", backend.rawValue, "--strict-backend", "--port", "0"])
        defer { server.child.stop() }
        let ann = try blockingConnect(port: server.port)
        defer { close(ann) }
        #expect(try readLine(ann, timeout: .seconds(10)).hasPrefix("* welcome, guest-1;"))
        let bob = try blockingConnect(port: server.port)
        defer { close(bob) }
        _ = try readLine(bob, timeout: .seconds(10))
        #expect(try readLine(ann, timeout: .seconds(10)) == "* guest-2 joined")
        try sendLine(bob, "/nick bob")
        #expect(try readLine(ann, timeout: .seconds(10)) == "* guest-2 is now bob")
        try sendLine(bob, "hi ann")
        #expect(try readLine(ann, timeout: .seconds(10)) == "<bob> hi ann")
        #expect(server.child.stop(), "chat did not exit on SIGTERM")
    }

    @Test("proxy --echo: chunks go through the proxy to its in-process echo and back", arguments: Backend.underTest)
    func proxyWithEcho(backend: Backend) throws {
        let server = try ExampleServer("proxy", arguments: ["--backend", backend.rawValue, "--strict-backend", "--port", "0", "--echo"])
        defer { server.child.stop() }
        let chunks = [1, 100, 1500, 4096, 7, 60_000, 3].map(randomBytes)
        let received = try exchange(port: server.port, chunks: chunks, timeout: .seconds(10))
        #expect(received == chunks.flatMap { $0 }, "the bytes back differ from those sent")
        #expect(server.child.stop(), "proxy did not exit on SIGTERM")
    }

    @Test("proxy to an echo process: bytes go through both", arguments: Backend.underTest)
    func proxyToEchoProcess(backend: Backend) throws {
        let echo = try EchoServer(backend: backend)
        defer { echo.stop() }
        let proxy = try ExampleServer("proxy", arguments: ["--backend", backend.rawValue, "--port", "0",
                                                           "--upstream", "127.0.0.1:\(echo.port)"])
        defer { proxy.child.stop() }
        let chunks = [5000, 1, 70_000].map(randomBytes)
        let received = try exchange(port: proxy.port, chunks: chunks, timeout: .seconds(10))
        #expect(received == chunks.flatMap { $0 })
    }

    @Test("proxy: a malformed --upstream is refused with the expected form")
    func proxyBadUpstream() throws {
        let child = try ChildProcess(executable: try Executables.product("proxy"), arguments: ["--upstream", "nowhere"])
        defer { child.stop() }
        let status = try #require(child.waitForExit(timeout: .seconds(10)), "proxy did not exit")
        #expect(status != 0)
        #expect(child.readStandardError().contains("expected HOST:PORT"))
    }

    func sendLine(_ fd: Int32, _ text: String) throws {
        let bytes = Array((text + "\n").utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
            throw TestFailure("send: \(String(cString: strerror(errno)))")
        }
    }
}
