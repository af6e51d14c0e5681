// Two engines connected in memory: what one leaves to send is fed to the
// other, as a transport would, until neither has anything left to say.
#if canImport(CReactorTLS)
import ReactorTLS
import ReactorTestSupport

/// Which engine threw, and what.
struct SideError: Error, CustomStringConvertible {
    var side: String
    var error: TLSError
    var description: String { "\(side): \(error)" }
}

/// A client and a server engine joined by memory.
final class EnginePair {
    let client: TLSEngine
    let server: TLSEngine
    /// Plaintext each side has read so far.
    private(set) var clientReceived: [UInt8] = []
    private(set) var serverReceived: [UInt8] = []
    private(set) var clientSawClose = false
    private(set) var serverSawClose = false

    init(client: TLSEngine, server: TLSEngine) {
        self.client = client
        self.server = server
    }

    /// Makes both engines from their configurations.
    convenience init(client: TLSConfiguration, serverName: String?, sessionKey: String? = nil,
                     server: TLSConfiguration) throws {
        self.init(client: try TLSEngine(configuration: client, serverName: serverName, sessionKey: sessionKey),
                  server: try TLSEngine(configuration: server))
    }

    /// Moves `from`'s pending ciphertext into `to`; true if there was any.
    @discardableResult
    static func transfer(from: TLSEngine, to: TLSEngine) -> Bool {
        let bytes = from.drainCiphertext()
        guard !bytes.isEmpty else { return false }
        to.feed(bytes)
        return true
    }

    /// Runs both handshakes to completion, then lets each side read what
    /// followed (session tickets), and returns (client, server) results.
    /// Throws a ``SideError`` naming the side that failed.
    func handshake() throws -> (client: TLSHandshakeInfo, server: TLSHandshakeInfo) {
        var clientInfo: TLSHandshakeInfo?
        var serverInfo: TLSHandshakeInfo?
        for _ in 0..<20 {
            do {
                if case .complete(let info) = try client.handshake() { clientInfo = info }
            } catch { throw SideError(side: "client", error: error) }
            Self.transfer(from: client, to: server)
            do {
                if case .complete(let info) = try server.handshake() { serverInfo = info }
            } catch { throw SideError(side: "server", error: error) }
            let moved = Self.transfer(from: server, to: client)
            if let clientInfo, let serverInfo, !moved {
                try settle()
                return (clientInfo, serverInfo)
            }
        }
        throw TestFailure("the handshake did not finish in 20 round trips")
    }

    /// Each side reads until it needs input, and what it produced goes
    /// across, until nothing moves: tickets processed, data delivered.
    func settle() throws {
        for _ in 0..<20 {
            try readAll(client, into: &clientReceived, closed: &clientSawClose, side: "client")
            let a = Self.transfer(from: client, to: server)
            try readAll(server, into: &serverReceived, closed: &serverSawClose, side: "server")
            let b = Self.transfer(from: server, to: client)
            if !a && !b {
                try readAll(client, into: &clientReceived, closed: &clientSawClose, side: "client")
                return
            }
        }
        throw TestFailure("the engines kept talking for 20 rounds")
    }

    private func readAll(_ engine: TLSEngine, into received: inout [UInt8], closed: inout Bool, side: String) throws {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let result: TLSReadResult
            do {
                result = try buffer.withUnsafeMutableBytes { try engine.read(into: $0) }
            } catch let error as TLSError {
                throw SideError(side: side, error: error)
            }
            switch result {
            case .bytes(let count): received += buffer[..<count]
            case .needsInput: return
            case .closed:
                closed = true
                return
            }
        }
    }

    /// Reads `engine` once more and returns the error it throws (nil if none).
    static func readError(_ engine: TLSEngine) -> TLSError? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        do {
            while case .bytes = try buffer.withUnsafeMutableBytes({ try engine.read(into: $0) }) {}
            return nil
        } catch let error as TLSError {
            return error
        } catch {
            return nil
        }
    }
}

/// Configurations the tests use, made from the shared certificates.
enum Configurations {
    static func server(_ certificate: TLSCertificateFiles? = nil, byName: [String: TLSCertificateFiles] = [:],
                       protocols: [String] = [], minimum: TLSVersion = .tls12, tickets: Bool = true) throws -> TLSConfiguration {
        let certificates = try TestCertificates.shared()
        return try TLSConfiguration(server: TLSServerOptions(
            certificate: certificate ?? certificates.server, certificatesByName: byName,
            applicationProtocols: protocols, minimumVersion: minimum, sessionTickets: tickets))
    }

    static func client(protocols: [String] = [], verification: TLSVerification = .full,
                       minimum: TLSVersion = .tls12) throws -> TLSConfiguration {
        let certificates = try TestCertificates.shared()
        return try TLSConfiguration(client: TLSClientOptions(
            trustRoots: .file(certificates.caCertificate), verification: verification,
            applicationProtocols: protocols, minimumVersion: minimum))
    }
}
#endif
