// The reply parser on its own: every type, every split point, and the
// errors and limits a broken or hostile server meets.
import ProtocolRESP
import Testing

@Suite("RESP reply parser")
struct RESPParserTests {
    static func parse(_ text: String, _ parser: RESPReplyParser = RESPReplyParser()) throws -> (RESPValue, Int)? {
        var parser = parser
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBytes { raw in try parser.parse(raw).map { ($0.value, $0.consumed) } }
    }

    @Test("every RESP2 type, whole and cut at every byte")
    func everyType() throws {
        let cases: [(String, RESPValue)] = [
            ("+OK\r\n", .simpleString("OK")),
            ("-ERR bad\r\n", .error("ERR bad")),
            (":-42\r\n", .integer(-42)),
            ("$3\r\na\r\n\r\n", .bulkString(Array("a\r\n".utf8))),
            ("$0\r\n\r\n", .bulkString([])),
            ("$-1\r\n", .bulkString(nil)),
            ("*-1\r\n", .array(nil)),
            ("*0\r\n", .array([])),
            ("*2\r\n*1\r\n:1\r\n$-1\r\n", .array([.array([.integer(1)]), .bulkString(nil)])),
        ]
        for (text, value) in cases {
            let whole = try Self.parse(text + "+next\r\n")
            #expect(whole?.0 == value, "\(text.debugDescription)")
            #expect(whole?.1 == text.utf8.count, "\(text.debugDescription)")
            for cut in 0..<text.utf8.count {
                let prefix = String(decoding: Array(text.utf8)[..<cut], as: UTF8.self)
                #expect(try Self.parse(prefix) == nil, "\(prefix.debugDescription) of \(text.debugDescription) parsed")
            }
        }
    }

    @Test("malformed replies and limits are errors that say what and where")
    func errors() {
        let cases: [(String, RESPReplyParser, String)] = [
            ("?x\r\n", RESPReplyParser(), "malformed RESP reply at byte 0: unknown reply type '?'"),
            (":12a\r\n", RESPReplyParser(), "malformed RESP reply at byte 0: integer '12a' is not a decimal integer"),
            ("$-5\r\n", RESPReplyParser(), "malformed RESP reply at byte 0: bulk length '-5' is not a length"),
            ("$2\r\nabcd\r\n", RESPReplyParser(), "malformed RESP reply at byte 6: bulk string of 2 bytes is not followed by \\r\\n"),
            ("+OK\n", RESPReplyParser(), "malformed RESP reply at byte 3: \\n without \\r before it"),
            ("$11\r\n", RESPReplyParser(maxBulkLength: 10), "malformed RESP reply at byte 0: bulk string of 11 bytes exceeds the maximum of 10"),
            ("*3\r\n", RESPReplyParser(maxElements: 2), "malformed RESP reply at byte 0: array of 3 elements exceeds the maximum of 2"),
            ("*1\r\n*1\r\n*1\r\n:1\r\n", RESPReplyParser(maxDepth: 2), "malformed RESP reply at byte 8: arrays nested deeper than the maximum of 2"),
            ("+" + String(repeating: "a", count: 20), RESPReplyParser(maxLineLength: 10), "malformed RESP reply at byte 0: line longer than the maximum of 10 bytes"),
        ]
        for (text, parser, message) in cases {
            #expect(throws: RESPProtocolError(message), "\(text.debugDescription)") { try Self.parse(text, parser) }
        }
    }

    @Test("a large bulk string is waited for, not re-parsed per read")
    func largeBulk() throws {
        var parser = RESPReplyParser()
        let header = Array("$100000\r\n".utf8)
        let partial = header + [UInt8](repeating: 0x61, count: 1000)
        let first = try partial.withUnsafeBytes { raw in try parser.parse(raw) }
        #expect(first == nil)
        #expect(parser.needed == header.count + 100_000 + 2)
    }
}
