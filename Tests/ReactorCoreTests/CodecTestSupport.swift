// Helpers shared by the codec tests.
@testable import ReactorCore
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: Helpers

/// How bytes reach a codec: copied into the buffer (`append`), or viewed in
/// place while nothing is buffered, as MessageChannel does (`inPlace`).
enum CodecFeeding: CaseIterable, CustomTestStringConvertible {
    case append, inPlace
    var testDescription: String { self == .append ? "appended" : "decoded in place" }
}

/// Feeds `chunks` to `codec` one at a time, decoding every whole message
/// after each; with `atEnd`, finishes with `decodeLast` as at end of stream.
/// Returns the messages and what was left buffered.
func decode<C: Codec>(_ codec: inout C, _ chunks: [[UInt8]], feeding: CodecFeeding = .append,
                      atEnd: Bool = false) throws(CodecError) -> (messages: [C.Inbound], left: Int) {
    var buffer = InboundBuffer()
    var messages: [C.Inbound] = []
    for chunk in chunks {
        let lend = feeding == .inPlace && buffer.readableBytes == 0
        // withUnsafeBytes rethrows untyped errors: carry the codec's error out as a Result.
        let outcome: Result<Void, CodecError> = chunk.withUnsafeBytes { bytes in
            if lend { buffer.lend(bytes) } else { buffer.append(bytes) }
            defer { buffer.stopBorrowing() }
            do throws(CodecError) {
                while let message = try codec.decode(&buffer) { messages.append(message) }
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try outcome.get()
        #expect(!buffer.isBorrowing)
    }
    if atEnd {
        while let message = try codec.decodeLast(&buffer) { messages.append(message) }
    }
    return (messages, buffer.readableBytes)
}

/// Every way to cut `bytes` in two, then byte by byte, then in one piece.
func splits(of bytes: [UInt8]) -> [[[UInt8]]] {
    var result: [[[UInt8]]] = [[bytes], bytes.map { [$0] }]
    for cut in 1..<max(bytes.count, 1) {
        result.append([Array(bytes[..<cut]), Array(bytes[cut...])])
    }
    return result
}

extension Array where Element == UInt8 {
    init(_ text: String) { self = Array(text.utf8) }
}

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// `F_SETPIPE_SZ`, which Swift's Glibc module does not export.
let setPipeSize: Int32 = 1031

/// A codec with a rule to break: `key=value` lines.
struct KeyValueCodec: Codec {
    var lines = LineCodec(maximumLineLength: 1024)

    mutating func decode(_ buffer: inout InboundBuffer) throws(CodecError) -> (key: String, value: String)? {
        guard let line = try lines.decode(&buffer) else { return nil }
        guard let equals = line.firstIndex(of: UInt8(ascii: "=")) else {
            throw CodecError.malformed("no '=' in line '\(text(line))'")
        }
        return (text(Array(line[..<equals])), text(Array(line[(equals + 1)...])))
    }

    mutating func encode(_ message: (key: String, value: String), into output: inout [UInt8]) {
        lines.encode([UInt8]("\(message.key)=\(message.value)"), into: &output)
    }
}
