@testable import ReactorCore
import SystemPackage
import Testing

@Suite struct ErrorAndTimeTests {
    @Test func errorNamesOperationSubjectAndErrno() {
        let error = ReactorError("register", .fd(12), errno: .badFileDescriptor)
        #expect(error.description == "register(fd 12): EBADF (Bad file descriptor)")
    }

    @Test func errorWithDetailOnly() {
        let error = ReactorError("send", .named("command"), detail: "the runtime has shut down")
        #expect(error.description == "send(command): the runtime has shut down")
    }

    @Test func errorWithErrnoAndDetail() {
        let error = ReactorError("connect", .resource(ResourceID(rawValue: 3 << 24 | 5)), errno: .connectionRefused, detail: "to 127.0.0.1:1")
        #expect(error.description == "connect(resource #3): ECONNREFUSED (Connection refused); to 127.0.0.1:1")
    }

    @Test func pollMillisecondsRoundsUp() {
        #expect(Duration.pollMilliseconds(nil) == -1)
        #expect(Duration.pollMilliseconds(.zero) == 0)
        #expect(Duration.pollMilliseconds(.nanoseconds(1)) == 1, "rounding down would spin until the deadline")
        #expect(Duration.pollMilliseconds(.milliseconds(5)) == 5)
        #expect(Duration.pollMilliseconds(.microseconds(5_001)) == 6)
        #expect(Duration.pollMilliseconds(.seconds(-1)) == 0)
        #expect(Duration.pollMilliseconds(.seconds(1_000_000_000)) == Int32.max)
    }

    @Test func resourceIDsCarryTheirSlot() {
        let id = ResourceID(sequence: 42, slot: 7)
        #expect(id.sequence == 42)
        #expect(id.slot == 7)
        #expect(id.description == "#42")
    }

    @Test func socketAddressParsesAndPrints() throws {
        let v4 = try SocketAddress(host: "127.0.0.1", port: 8080)
        #expect(v4.description == "127.0.0.1:8080")
        #expect(v4.port == 8080)
        let v6 = try SocketAddress(host: "::1", port: 443)
        #expect(v6.description == "[::1]:443")
        #expect(throws: ReactorError.self) { try SocketAddress(host: "localhost", port: 1) }
    }
}
