import ProtocolRESP

/// Runs the commands of one read: parse, execute, append the reply, repeat,
/// under a single acquisition of the store's lock.
enum KVBatch {
    /// Why a run stopped.
    enum Stop: Equatable {
        /// The rest of the input is an incomplete command (or nothing).
        case needMore
        /// The replies reached the run's `pauseAt` (at most ``pauseThreshold``):
        /// write them, then run again from where this run stopped, unless
        /// back-pressure stops the connection (keeps the lock's hold time, the
        /// reply buffer and the connection's queue bounded when a client
        /// pipelines big GETs).
        case paused
        /// QUIT: the reply is appended; close after writing it.
        case quit
        /// A protocol error: its reply is appended; close after writing it.
        case protocolError
        /// The client's unread replies passed the output-buffer limit.
        case overflow
    }

    /// The most replies gathered before a run pauses to write them.
    static let pauseThreshold = 1 << 20

    /// Runs commands from `input`, whose first command the caller has
    /// already parsed (`first`, not `.incomplete`). Returns how many bytes of
    /// `input` were consumed and why it stopped. `queued` is what the
    /// connection already has waiting to be written, for the output limit;
    /// the run pauses once its replies reach `pauseAt` bytes.
    @inline(__always)
    static func run(_ input: UnsafeRawBufferPointer, first: RESPRequestParser.Outcome, parser: inout RESPRequestParser,
                    store: inout KVStore, reply: inout RESPReplyBuffer, context: KVCommandContext,
                    queued: Int, limit: Int, pauseAt: Int) -> (consumed: Int, stop: Stop) {
        var offset = 0
        var outcome = first
        while true {
            switch outcome {
            case .command(let consumed):
                let keepOpen: Bool
                if parser.isInline {
                    keepOpen = parser.inlineBytes.withUnsafeBytes { bytes in
                        parser.spans.withUnsafeBufferPointer { spans in
                            // An inline command with only empty arguments decodes to no bytes.
                            let base = bytes.baseAddress ?? UnsafeRawPointer(input.baseAddress!)
                            return KVExecutor.execute(KVArgs(base: base, spans: UnsafeBufferPointer(rebasing: spans[..<parser.spanCount])),
                                                      store: &store, reply: &reply, context: context)
                        }
                    }
                } else {
                    keepOpen = parser.spans.withUnsafeBufferPointer { spans in
                        KVExecutor.execute(KVArgs(base: input.baseAddress! + offset, spans: UnsafeBufferPointer(rebasing: spans[..<parser.spanCount])),
                                           store: &store, reply: &reply, context: context)
                    }
                }
                offset += consumed
                parser.reset()
                if !keepOpen { return (offset, .quit) }
                if reply.count + queued > limit { return (offset, .overflow) }
                if reply.count >= pauseAt { return (offset, .paused) }
            case .nothing(let consumed):
                offset += consumed
            case .incomplete:
                return (offset, .needMore)
            case .protocolError(let message):
                reply.appendError(message)
                return (offset, .protocolError)
            }
            outcome = parser.parse(UnsafeRawBufferPointer(rebasing: input[offset...]))
        }
    }
}
