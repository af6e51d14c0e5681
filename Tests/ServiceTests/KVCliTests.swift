// kv with the unmodified redis-cli: every command, its formatted reply, and
// bulk loading with --pipe.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

@Suite("kv: redis-cli")
struct KVCliTests {
    /// Each command and what `redis-cli --no-raw` prints for it.
    static let session: [(command: String, output: [String])] = [
        ("FLUSHALL", ["OK"]),
        ("PING", ["PONG"]),
        ("PING hello", ["\"hello\""]),
        ("ECHO \"hi there\"", ["\"hi there\""]),
        ("SET greeting hello", ["OK"]),
        ("GET greeting", ["\"hello\""]),
        ("GET missing", ["(nil)"]),
        ("SET greeting hola XX GET", ["\"hello\""]),
        ("SET other 1 NX", ["OK"]),
        ("SET other 2 NX", ["(nil)"]),
        ("SET temp v EX 100", ["OK"]),
        ("TTL temp", ["(integer) 100"]),
        ("SET temp2 v PX 100000 KEEPTTL", ["(error) ERR syntax error"]),
        ("GETSET greeting bonjour", ["\"hola\""]),
        ("EXISTS greeting other missing", ["(integer) 2"]),
        ("INCR counter", ["(integer) 1"]),
        ("INCRBY counter 41", ["(integer) 42"]),
        ("DECR counter", ["(integer) 41"]),
        ("DECRBY counter 1", ["(integer) 40"]),
        ("INCR greeting", ["(error) ERR value is not an integer or out of range"]),
        ("MSET a 1 b 2", ["OK"]),
        ("MGET a b missing", ["1) \"1\"", "2) \"2\"", "3) (nil)"]),
        ("EXPIRE a 100", ["(integer) 1"]),
        ("TTL a", ["(integer) 100"]),
        ("PEXPIRE b 100000", ["(integer) 1"]),
        ("PTTL missing", ["(integer) -2"]),
        ("PERSIST a", ["(integer) 1"]),
        ("TTL a", ["(integer) -1"]),
        ("DEL a b missing", ["(integer) 2"]),
        ("SETNX fresh 1", ["(integer) 1"]),
        ("SETEX short 100 v", ["OK"]),
        ("PSETEX shorter 100000 v", ["OK"]),
        ("APPEND fresh 23", ["(integer) 3"]),
        ("STRLEN fresh", ["(integer) 3"]),
        ("GETDEL fresh", ["\"123\""]),
        ("TYPE greeting", ["string"]),
        ("TYPE fresh", ["none"]),
        ("UNLINK short shorter", ["(integer) 2"]),
        ("KEYS gree*", ["1) \"greeting\""]),
        ("KEYS nothing*", ["(empty array)"]),
        ("DBSIZE", ["(integer) 4"]),
        ("SELECT 0", ["OK"]),
        ("SELECT 1", ["(error) ERR DB index is out of range"]),
        ("CLIENT SETNAME tester", ["OK"]),
        ("CLIENT GETNAME", ["\"tester\""]),
        ("CONFIG GET save", ["1) \"save\"", "2) \"\""]),
        ("CONFIG GET appendonly", ["1) \"appendonly\"", "2) \"no\""]),
        ("INFO keyspace", ["# Keyspace", "db0:keys=4,expires=1,avg_ttl=0"]),
        ("COMMAND COUNT", ["(integer) 50"]),
        ("FLUSHALL", ["OK"]),
        ("DBSIZE", ["(integer) 0"]),
        ("SET price 10.50", ["OK"]),
        ("INCRBYFLOAT price 0.1", ["\"10.6\""]),
        ("INCRBYFLOAT price 5.0e3", ["\"5010.60000000000000009\""]),
        ("GETRANGE price 0 3", ["\"5010\""]),
        ("RENAME price cost", ["OK"]),
        ("RENAME price cost", ["(error) ERR no such key"]),
        ("COPY cost price", ["(integer) 1"]),
        ("MSETNX price 1 other 2", ["(integer) 0"]),
        ("FLUSHDB", ["OK"]),
        ("FOO bar", ["(error) ERR unknown command 'FOO', with args beginning with: 'bar' "]),
        ("GET", ["(error) ERR wrong number of arguments for 'get' command"]),
        ("CLIENT NOPE", ["(error) ERR unknown subcommand 'NOPE'. Try CLIENT HELP."]),
        ("SET x y z", ["(error) ERR syntax error"]),
        ("QUIT", []),
    ]

    @Test("every command through redis-cli reading standard input", arguments: Backend.underTest)
    func everyCommand(backend: Backend) throws {
        let server = try KVTestServer(backend: backend)
        defer { server.stop() }
        // Reading commands from standard input, redis-cli 7 first asks for
        // COMMAND DOCS and builds its help from the reply: a malformed reply
        // would make it fail before the first command.
        let input = try temporaryFile(Array((Self.session.map(\.command).joined(separator: "\n") + "\n").utf8))
        defer { try? FileManager.default.removeItem(at: input) }
        let result = try runTool("redis-cli", ["-p", "\(server.port)", "--no-raw"], input: input)
        #expect(result.status == 0, "redis-cli failed: \(result.errorOutput)")
        let lines = result.output.replacingOccurrences(of: "\r", with: "").split(separator: "\n", omittingEmptySubsequences: false)
            .map(String.init).dropLast()  // the final newline
        var position = 0
        for (command, expected) in Self.session {
            let actual = Array(lines.dropFirst(position).prefix(expected.count))
            #expect(actual == expected, "\(command)")
            position += expected.count
        }
        #expect(lines.count == position, "unexpected extra output: \(lines.dropFirst(position))")
        #expect(server.stop() == nil, "kv did not exit cleanly on SIGTERM")
    }

    @Test("commands as redis-cli arguments", arguments: Backend.underTest)
    func commandLine(backend: Backend) throws {
        let server = try KVTestServer(backend: backend)
        defer { server.stop() }
        let port = "\(server.port)"
        func cli(_ arguments: String...) throws -> String {
            let result = try runTool("redis-cli", ["-p", port] + arguments)
            #expect(result.status == 0, "redis-cli \(arguments): \(result.errorOutput)")
            return result.output
        }
        #expect(try cli("SET", "name", "kv server") == "OK\n")
        #expect(try cli("GET", "name") == "kv server\n")
        #expect(try cli("--no-raw", "GET", "name") == "\"kv server\"\n")
        #expect(try cli("INCRBY", "n", "5") == "5\n")
        #expect(try cli("MGET", "name", "n", "none") == "kv server\n5\n\n")
        #expect(try cli("--no-raw", "COMMAND", "DOCS", "get") .contains("\"Get the value of a key\""))
        #expect(try cli("PING") == "PONG\n")
    }

    @Test("redis-cli --pipe loads 10,000 keys", arguments: Backend.underTest)
    func pipeMode(backend: Backend) throws {
        let server = try KVTestServer(backend: backend)
        defer { server.stop() }
        var bytes: [UInt8] = []
        for index in 0..<10_000 {
            bytes += kvCommand("SET", "key:\(index)", "value:\(index)")
        }
        let input = try temporaryFile(bytes)
        defer { try? FileManager.default.removeItem(at: input) }
        let result = try runTool("redis-cli", ["-p", "\(server.port)", "--pipe"], input: input)
        #expect(result.status == 0, "redis-cli --pipe failed: \(result.output) \(result.errorOutput)")
        #expect(result.output.contains("errors: 0, replies: 10000"), "\(result.output)")
        let client = try KVClient(port: server.port)
        #expect(try client.call("DBSIZE") == ":10000\r\n")
        #expect(try client.call("GET", "key:9999") == "$10\r\nvalue:9999\r\n")
    }
}
