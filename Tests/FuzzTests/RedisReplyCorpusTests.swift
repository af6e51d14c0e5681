// The RESP reply parser against redis-server itself: replies recorded from a
// real server (scripts/record-redis-replies.sh writes Fuzz/RedisReplies), each
// with what redis-cli printed for the same commands. Parsed here, rendered the
// way redis-cli renders, they must print the same; encoded again they must be
// the very bytes the server sent; and cut anywhere they must parse the same.
import Foundation
import ProtocolRESP
import Testing

@Suite("RESP reply parser against recorded redis-server replies")
struct RedisReplyCorpusTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz/RedisReplies").path

    static var cases: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { $0.hasSuffix(".resp") }.map { String($0.dropLast(5)) }.sorted()
    }

    @Test("the recorded corpus is there")
    func corpusExists() {
        #expect(Self.cases.count >= 10, "recordings in \(Self.folder)")
    }

    @Test("parsed replies print as redis-cli printed them, and encode to the bytes received", arguments: cases)
    func agreesWithRedis(_ name: String) throws {
        let raw = try #require(FileManager.default.contents(atPath: "\(Self.folder)/\(name).resp")).map { $0 }
        let printed = try #require(FileManager.default.contents(atPath: "\(Self.folder)/\(name).cli")).map { $0 }
        let replies = try Self.parseAll(raw, cuts: [raw.count])
        #expect(!replies.isEmpty)

        // redis-cli escapes every byte outside printable ASCII, so its output is text.
        let rendered = replies.map { Self.render($0) }.joined()
        #expect(rendered == String(decoding: printed, as: UTF8.self), "\(name): what redis-cli printed (right) and the parser's replies printed the same way (left)")

        var encoded = RESPReplyBuffer(capacity: 64)
        for reply in replies { Self.encode(reply, into: &encoded) }
        #expect(Array(encoded.bytes) == raw, "\(name): the replies encode to other bytes than the server sent")

        // Cut anywhere (every byte a read of its own, and every two-piece split): the same replies.
        #expect(try Self.parseAll(raw, cuts: Array(repeating: 1, count: raw.count)) == replies)
        for cut in stride(from: 1, to: raw.count, by: max(1, raw.count / 200)) {
            #expect(try Self.parseAll(raw, cuts: [cut, raw.count - cut]) == replies, "\(name) cut at \(cut)")
        }
    }

    /// Every reply in `bytes`, arriving in reads of `cuts` bytes; a trailing incomplete reply fails.
    static func parseAll(_ bytes: [UInt8], cuts: [Int]) throws -> [RESPValue] {
        var parser = RESPReplyParser()
        var replies: [RESPValue] = []
        var start = 0, available = 0
        for cut in cuts {
            available += cut
            while true {
                let result = try bytes.withUnsafeBytes { try parser.parse(UnsafeRawBufferPointer(rebasing: $0[start..<available])) }
                guard let (value, consumed) = result else { break }
                replies.append(value)
                start += consumed
            }
        }
        if start != bytes.count { throw RESPProtocolError("\(bytes.count - start) bytes left unparsed") }
        return replies
    }

    /// What `redis-cli --no-raw` prints for a reply (its cliFormatReplyTTY):
    /// nested arrays numbered and indented, bulk strings quoted with C escapes.
    static func render(_ value: RESPValue, prefix: String = "") -> String {
        switch value {
        case .simpleString(let text): return text + "\n"
        case .error(let text): return "(error) \(text)\n"
        case .integer(let number): return "(integer) \(number)\n"
        case .bulkString(nil), .array(nil): return "(nil)\n"
        case .bulkString(let bytes?): return quoted(bytes) + "\n"
        case .array(let elements?):
            guard !elements.isEmpty else { return "(empty array)\n" }
            let width = String(elements.count).count
            let inner = prefix + String(repeating: " ", count: width + 2)
            var text = ""
            for (index, element) in elements.enumerated() {
                let number = String(index + 1)
                text += (index == 0 ? "" : prefix) + String(repeating: " ", count: width - number.count) + number + ") "
                text += render(element, prefix: inner)
            }
            return text
        }
    }

    /// sdscatrepr: in double quotes, `\\ \" \n \r \t \a \b` escaped, other bytes outside isprint as `\xhh`.
    static func quoted(_ bytes: [UInt8]) -> String {
        var text = "\""
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\\"): text += "\\\\"
            case UInt8(ascii: "\""): text += "\\\""
            case 0x0A: text += "\\n"
            case 0x0D: text += "\\r"
            case 0x09: text += "\\t"
            case 0x07: text += "\\a"
            case 0x08: text += "\\b"
            case 0x20...0x7E: text.append(Character(UnicodeScalar(byte)))
            default: text += "\\x" + (byte < 0x10 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return text + "\""
    }

    static func encode(_ value: RESPValue, into buffer: inout RESPReplyBuffer) {
        switch value {
        case .simpleString(let text): buffer.appendStatus(text)
        case .error(let text): buffer.appendError(Array(("-" + text).utf8))
        case .integer(let number): buffer.appendInteger(number)
        case .bulkString(nil): buffer.appendNull()
        case .bulkString(let bytes?): buffer.appendBulk(bytes)
        case .array(nil): buffer.append("*-1\r\n")
        case .array(let elements?):
            buffer.appendArrayHeader(elements.count)
            for element in elements { encode(element, into: &buffer) }
        }
    }
}
