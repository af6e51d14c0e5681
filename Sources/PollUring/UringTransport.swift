#if canImport(CUring)
import CReactorSys
import CUring
import ReactorCore
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The ring of provided buffers the multishot receives fill (buffer group 0).
///
/// Buffers are handed to the kernel once at start and again each time a
/// completion's bytes have been delivered; a buffer the kernel used is ours
/// from its completion until ``StreamTransport/release(_:)``. One ring is
/// shared by every stream of the runtime; a stream that is not reading
/// stops its receive, so it holds only the few buffers that raced the cancel.
///
/// **Sizes.** Buffers of 4 KiB, many rather than few large ones, because
/// every stream with something to say in a turn takes one whatever its
/// size: 10,000 connections each sending 64 bytes take 10,000 buffers, and
/// a ring with fewer answers the rest `-ENOBUFS` (they retry once buffers
/// return, at the cost of a request each). **Memory.** The kernel takes
/// buffers in ring order, so every buffer provided is touched soon after
/// start: 8,192 of them would be 32 MiB resident per runtime (measured: the
/// kv flood test grew by 12.8 MB with 4,096 provided, against 1.2 MB over
/// epoll). So the ring starts with 256 buffers (1 MiB) and doubles them each
/// time receives run out, up to 8,192: the memory follows the concurrency
/// the runtime has actually seen.
///
/// **After a burst.** Grown, the ring would keep its pages for good: 5,000
/// connect/reset cycles against kv, a sixth of them a big pipeline reset
/// mid-reply, left a runtime 6–16 MB above its baseline (the ring's share
/// depends on how far it grew). So once the runtime has been quiet for a
/// while (``RuntimeOptions/releaseMemoryAfterQuiet``) the ring shrinks back
/// to its initial 256 buffers and the pages of the others go back to the
/// kernel (``shrink(on:)``). Buffers a stream still holds then are
/// retired when it releases them.
struct UringBufferRing {
    /// Ring entries, and the most buffers ever provided.
    static let count: UInt32 = 8192
    /// Buffers provided at start.
    static let initial: UInt32 = 256
    static let size = 4096
    static let group: UInt16 = 0

    /// The entries the kernel reads (page-aligned, as registration requires).
    let entries: UnsafeMutableRawPointer
    /// The buffers themselves, `count` × `size`.
    let memory: UnsafeMutableRawPointer
    /// One byte per buffer id: 1 while the buffer is ours (filled by the
    /// kernel, not yet given back). A shrink must know which buffers hold a
    /// stream's bytes, to leave them alone.
    let held: UnsafeMutablePointer<UInt8>
    /// Buffers the kernel has filled and we have not given back.
    var outstanding = 0
    /// Of those, the ones at or past `provided` (held across a shrink):
    /// retired, not given back, when released.
    var retiredHeld = 0
    /// Buffers provided so far (ids 0..<provided).
    var provided: UInt32 = 0
    /// Whether the ring is registered; false only if registering it again after a shrink failed.
    var registered = true

    /// Sound: `entries` was allocated for, and registered as, this struct and its entries.
    var ring: UnsafeMutablePointer<io_uring_buf_ring> { entries.assumingMemoryBound(to: io_uring_buf_ring.self) }

    /// Registers a ring on `uring`, or says which feature is missing.
    static func make(on uring: UnsafeMutablePointer<io_uring>) -> Result<UringBufferRing, UringFeatureMissing> {
        guard let probe = io_uring_get_probe_ring(uring) else {
            return .failure(UringFeatureMissing("io_uring_get_probe (kernel 5.6)"))
        }
        defer { io_uring_free_probe(probe) }
        // Multishot receive came with kernel 6.0, as did SEND_ZC: the opcode
        // is the probe's witness that the kernel is new enough.
        for (opcode, what) in [(IORING_OP_RECV, "IORING_OP_RECV"), (IORING_OP_SENDMSG, "IORING_OP_SENDMSG"),
                               (IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL"),
                               (IORING_OP_SEND_ZC, "kernel 6.0 (multishot receive; probed by IORING_OP_SEND_ZC)")]
        where io_uring_opcode_supported(probe, Int32(opcode.rawValue)) == 0 {
            return .failure(UringFeatureMissing(what))
        }
        let entriesSize = reactor_buf_ring_size(count)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var entries: UnsafeMutableRawPointer?
        var memory: UnsafeMutableRawPointer?
        guard posix_memalign(&entries, page, entriesSize) == 0, let entries else {
            return .failure(UringFeatureMissing("memory for the buffer ring"))
        }
        guard posix_memalign(&memory, page, Int(count) * size) == 0, let memory else {
            free(entries)
            return .failure(UringFeatureMissing("memory for the buffers"))
        }
        memset(entries, 0, entriesSize)
        let rc = reactor_register_buf_ring(uring, entries, count, group)
        guard rc == 0 else {
            free(entries)
            free(memory)
            return .failure(UringFeatureMissing("provided-buffer rings (kernel 5.19): registration failed with \(Errno(rawValue: -rc))"))
        }
        let held = UnsafeMutablePointer<UInt8>.allocate(capacity: Int(count))
        held.initialize(repeating: 0, count: Int(count))
        var made = UringBufferRing(entries: entries, memory: memory, held: held)
        io_uring_buf_ring_init(made.ring)
        made.grow(on: uring)
        made.receiveLimit = UringBufferRing.kernelLimitsReceives ? UringBufferRing.receiveLimit : 0
        return .success(made)
    }

    /// Bytes one multishot receive takes before it ends (and is started
    /// again on the next turn if the stream still reads): 64 KiB, what a
    /// readiness backend reads per turn. A multishot receive otherwise reads
    /// ahead of its handler for as long as bytes arrive and buffers last,
    /// moving a flooding sender's stream out of the kernel's socket buffer
    /// (bounded, and back-pressure on the sender) into the runtime's memory
    /// (measured without it: 100 kv clients that never read took 127 MB,
    /// against 36 MB over epoll, and the server grew by 208 MB).
    static let receiveLimit: UInt32 = 64 << 10
    /// ``receiveLimit`` when the kernel honours it (6.16 and later), else 0.
    var receiveLimit: UInt32 = 0

    /// Whether the kernel ends a multishot receive after a byte limit,
    /// probed once per process on a ring of its own (the runtime's may not
    /// submit before its loop thread enables it): one limited receive on a
    /// socket pair; an older kernel answers -EINVAL.
    static let kernelLimitsReceives: Bool = probeReceiveLimit()

    private static func probeReceiveLimit() -> Bool {
        let uring = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
        defer { uring.deallocate() }
        guard io_uring_queue_init(8, uring, 0) == 0 else { return false }
        defer { io_uring_queue_exit(uring) }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var entries: UnsafeMutableRawPointer?
        guard posix_memalign(&entries, page, reactor_buf_ring_size(8)) == 0, let entries else { return false }
        defer { free(entries) }
        memset(entries, 0, reactor_buf_ring_size(8))
        guard reactor_register_buf_ring(uring, entries, 8, group) == 0 else { return false }
        let bufferRing = entries.assumingMemoryBound(to: io_uring_buf_ring.self)
        var buffer = [UInt8](repeating: 0, count: 64)
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &pair) == 0 else { return false }
        defer { Glibc.close(pair[0]); Glibc.close(pair[1]) }
        return buffer.withUnsafeMutableBytes { buffer in
            reactor_buf_ring_recycle(bufferRing, buffer.baseAddress!, 64, 0, 8)
            return probeReceive(on: uring, fd: pair[0], peer: pair[1])
        }
    }

    private static func probeReceive(on uring: UnsafeMutablePointer<io_uring>, fd: Int32, peer: Int32) -> Bool {
        let probe: UInt64 = UringPoller.kindControl | 1
        guard let sqe = io_uring_get_sqe(uring) else { return false }
        reactor_prep_recv_multishot(sqe, fd, UringBufferRing.group, UringBufferRing.receiveLimit)
        io_uring_sqe_set_data64(sqe, probe)
        var byte: UInt8 = 1
        _ = Glibc.write(peer, &byte, 1)
        var supported = false
        var ended = false
        var cancelled = false
        var ts = __kernel_timespec(tv_sec: 0, tv_nsec: 200_000_000)
        var cqe: UnsafeMutablePointer<io_uring_cqe>?
        while !ended {
            guard io_uring_submit_and_wait_timeout(uring, &cqe, 1, &ts, nil) >= 0, let cqe else { break }
            let entry = cqe.pointee
            io_uring_cqe_seen(uring, cqe)
            if entry.user_data != probe { continue }
            if entry.res > 0 { supported = true }
            if entry.flags & UInt32(IORING_CQE_F_MORE) == 0 {
                ended = true
            } else if !cancelled, let cancel = io_uring_get_sqe(uring) {
                cancelled = true
                io_uring_prep_cancel64(cancel, probe, 0)
                io_uring_sqe_set_data64(cancel, UringPoller.kindControl)
            }
        }
        return supported && ended
    }

    /// Provides more buffers (doubling, up to ``count``); false at the maximum.
    @discardableResult
    mutating func grow(on uring: UnsafeMutablePointer<io_uring>) -> Bool {
        if !registered { return register(on: uring) }
        guard provided < UringBufferRing.count else { return false }
        let adding = provided == 0 ? UringBufferRing.initial : min(provided, UringBufferRing.count - provided)
        provide(provided..<(provided + adding))
        provided += adding
        return true
    }

    /// Adds the buffers of `ids` that no stream holds; those it holds are given back when released.
    private mutating func provide(_ ids: Range<UInt32>) {
        var added: Int32 = 0
        for id in ids {
            let bid = UInt16(id)
            if held[Int(id)] != 0 {
                if id >= provided { retiredHeld -= 1 }  // within the ring again: given back, not retired, on release
                continue
            }
            io_uring_buf_ring_add(ring, address(bid), UInt32(UringBufferRing.size), bid,
                                  io_uring_buf_ring_mask(UringBufferRing.count), added)
            added += 1
        }
        io_uring_buf_ring_advance(ring, added)
    }

    func address(_ bid: UInt16) -> UnsafeMutableRawPointer { memory + Int(bid) * UringBufferRing.size }

    /// The kernel filled buffer `bid`: ours until ``giveBack(_:)``.
    @inline(__always)
    mutating func take(_ bid: UInt16) {
        held[Int(bid)] = 1
        outstanding += 1
    }

    /// Buffer `bid` is done with: back to the kernel, or, past a shrink's
    /// end, its pages to the kernel.
    @inline(__always)
    mutating func giveBack(_ bid: UInt16) {
        held[Int(bid)] = 0
        outstanding -= 1
        if UInt32(bid) < provided {
            reactor_buf_ring_recycle(ring, address(bid), UInt32(UringBufferRing.size), bid, UringBufferRing.count)
        } else {
            retiredHeld -= 1
            discardPages(UInt32(bid)..<UInt32(bid) + 1)
        }
    }

    /// Buffers the kernel may fill now.
    var available: Int { Int(provided) - (outstanding - retiredHeld) }

    /// Whether a shrink would return anything.
    var isGrown: Bool { registered && provided > UringBufferRing.initial }

    /// The first step of a shrink: the kernel takes no buffer from the ring
    /// after this. False if the kernel refused (the ring stays as it was).
    mutating func unregister(on uring: UnsafeMutablePointer<io_uring>) -> Bool {
        guard io_uring_unregister_buf_ring(uring, Int32(UringBufferRing.group)) == 0 else { return false }
        registered = false
        return true
    }

    /// The rest of a shrink, once the ring is unregistered and every
    /// completion posted until then reaped (``UringPoller/shrinkBuffers(into:)``):
    /// back to ``initial`` buffers, the pages of the others returned to the
    /// kernel, and a fresh ring registered over the same memory with the
    /// buffers below ``initial`` that no stream holds. Returns how many
    /// buffers' pages were returned.
    mutating func shrink(on uring: UnsafeMutablePointer<io_uring>) -> Int {
        let from = UringBufferRing.initial, to = provided
        provided = UringBufferRing.initial
        var discarded = 0, run: UInt32? = nil
        for id in from...to {
            if id < to && held[Int(id)] != 0 { retiredHeld += 1 }
            // Runs of buffers nobody holds, one madvise each.
            if id < to && held[Int(id)] == 0 {
                if run == nil { run = id }
            } else if let start = run {
                discardPages(start..<id)
                discarded += Int(id - start)
                run = nil
            }
        }
        _ = register(on: uring)
        return discarded
    }

    /// Registers the ring (again) with the buffers below ``provided`` that no stream holds.
    private mutating func register(on uring: UnsafeMutablePointer<io_uring>) -> Bool {
        memset(entries, 0, reactor_buf_ring_size(UringBufferRing.count))
        guard reactor_register_buf_ring(uring, entries, UringBufferRing.count, UringBufferRing.group) == 0 else {
            // Receives end with -ENOBUFS meanwhile; the next one tries again (grow).
            return false
        }
        registered = true
        io_uring_buf_ring_init(ring)
        provide(0..<provided)
        return true
    }

    /// Returns the pages of buffers `ids` to the kernel; they read as zeros when next touched.
    private func discardPages(_ ids: Range<UInt32>) {
        // Sound: the range lies in `memory` (ids below `count`), and neither
        // the kernel (not in the ring) nor a stream (not held) uses these buffers.
        _ = madvise(address(UInt16(ids.lowerBound)), Int(ids.count) * UringBufferRing.size, MADV_DONTNEED)
    }

    func deallocate() {
        free(entries)
        free(memory)
        held.deallocate()
    }
}

/// What the completion mode lacks on this kernel, for ``UringPoller/Mode``.
struct UringFeatureMissing: Error {
    let what: String
    init(_ what: String) { self.what = what }
}

/// Sends in flight: each slot holds the stream that owns the bytes (so they
/// outlive a close) and the message header and vectors the request points
/// to, reused from one send to the next.
struct UringSendSlots {
    static let vectors = 64

    struct Slot {
        var owner: AnyObject?
        var index: Int32 = 0
        var epoch: UInt64 = 0
        let header: UnsafeMutablePointer<msghdr>
        let iov: UnsafeMutablePointer<iovec>
    }
    var slots: [Slot] = []
    var free: [Int32] = []

    mutating func take() -> Int32 {
        if let slot = free.popLast() { return slot }
        slots.append(Slot(header: .allocate(capacity: 1), iov: .allocate(capacity: UringSendSlots.vectors)))
        return Int32(slots.count - 1)
    }

    func deallocate() {
        for slot in slots {
            slot.header.deallocate()
            slot.iov.deallocate()
        }
    }
}

extension UringPoller: StreamTransport {
    public func attach(_ fd: FileDescriptor) {
        let index = Int(fd.rawValue)
        guard isRegistered(index) else { return }
        table[index].streaming = true
    }

    public func startReceiving(_ fd: FileDescriptor) {
        let index = Int(fd.rawValue)
        guard isRegistered(index), !table[index].receiving else { return }
        table[index].receiving = true
        let tag = UringPoller.tag(index, table[index].epoch, kind: UringPoller.kindReceive)
        #if DEBUG
        var limit = buffers!.receiveLimit
        var fault: FaultInjection.Kinds?
        if let injector = FaultInjector.current, let chosen = injector.decide(.uringReceive) {
            fault = chosen
            switch chosen {
            case .uringNoBuffers, .connectionReset:
                // The receive's end, as the kernel reports it (no buffer left, or the peer's reset), without submitting it.
                table[index].receiving = false
                return completions.append(StreamCompletion(token: Token(table[index].token), kind: .received,
                                                           result: chosen == .uringNoBuffers ? -ENOBUFS : -ECONNRESET))
            case .uringEarlyEnd where limit > 0:
                // The kernel ends it for real, after a few bytes: a byte limit it honours.
                limit = UInt32(injector.amount(below: 4096))
            default:
                break
            }
        }
        #else
        let limit = buffers!.receiveLimit
        #endif
        let sqe = nextSQE()
        reactor_prep_recv_multishot(sqe, fd.rawValue, UringBufferRing.group, limit)
        io_uring_sqe_set_data64(sqe, tag)
        #if DEBUG
        // A kernel that cannot limit receives ends this one by cancelling it instead.
        if fault == .uringCancelled || (fault == .uringEarlyEnd && limit == buffers!.receiveLimit) { cancel(tag) }
        #endif
    }

    public func stopReceiving(_ fd: FileDescriptor) {
        let index = Int(fd.rawValue)
        guard isRegistered(index), table[index].receiving else { return }
        cancel(UringPoller.tag(index, table[index].epoch, kind: UringPoller.kindReceive))
    }

    public func startAccepting(_ fd: FileDescriptor) {
        let index = Int(fd.rawValue)
        guard isRegistered(index), !table[index].receiving else { return }
        table[index].receiving = true
        table[index].accepts = true
        let tag = UringPoller.tag(index, table[index].epoch, kind: UringPoller.kindAccept)
        #if DEBUG
        let fault = FaultInjector.current?.decide(.uringAccept)
        if fault == .tooManyOpenFiles {
            // Out of descriptors, as the kernel ends a multishot accept then, without submitting it.
            table[index].receiving = false
            return completions.append(StreamCompletion(token: Token(table[index].token), kind: .accepted, result: -EMFILE))
        }
        #endif
        let sqe = nextSQE()
        io_uring_prep_multishot_accept(sqe, fd.rawValue, nil, nil, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
        io_uring_sqe_set_data64(sqe, tag)
        #if DEBUG
        if fault == .uringCancelled { cancel(tag) }
        #endif
    }

    public var maximumSendVectors: Int { UringSendSlots.vectors }

    public func send(_ fd: FileDescriptor, owner: AnyObject, gather: (UnsafeMutableBufferPointer<iovec>) -> Int) {
        let index = Int(fd.rawValue)
        guard isRegistered(index) else { return }
        #if DEBUG
        let fault = FaultInjector.current?.decide(.uringSend)
        if fault == .brokenPipe {
            // The peer is gone: the send fails as the kernel fails it, without being submitted.
            return completions.append(StreamCompletion(token: Token(table[index].token), kind: .sent, result: -EPIPE))
        }
        #endif
        let slot = sends.take()
        sends.slots[Int(slot)].owner = owner
        sends.slots[Int(slot)].index = fd.rawValue
        sends.slots[Int(slot)].epoch = table[index].epoch
        table[index].sendSlot = slot
        // The two pointers, not the slot: copying the slot retained its owner.
        let iov = sends.slots[Int(slot)].iov, header = sends.slots[Int(slot)].header
        #if DEBUG
        var count = gather(UnsafeMutableBufferPointer(start: iov, count: UringSendSlots.vectors))
        if fault == .uringShortSends, let first = (0..<count).first(where: { iov[$0].iov_len > 0 }) {
            // What a kernel short of socket buffer sends: the first byte.
            iov.pointee = iovec(iov_base: iov[first].iov_base, iov_len: 1)
            count = 1
        }
        #else
        let count = gather(UnsafeMutableBufferPointer(start: iov, count: UringSendSlots.vectors))
        #endif
        let sqe = nextSQE()
        if count == 1 {
            io_uring_prep_send(sqe, fd.rawValue, iov.pointee.iov_base, iov.pointee.iov_len, Int32(MSG_NOSIGNAL))
        } else {
            // Sound: the header and vectors live in the slot until this send's completion frees it.
            header.pointee = msghdr()
            header.pointee.msg_iov = iov
            header.pointee.msg_iovlen = count
            io_uring_prep_sendmsg(sqe, fd.rawValue, header, UInt32(MSG_NOSIGNAL))
        }
        io_uring_sqe_set_data64(sqe, UringPoller.kindSend | UInt64(UInt32(slot)))
        #if DEBUG
        if fault == .uringCancelled { cancel(UringPoller.kindSend | UInt64(UInt32(slot))) }
        #endif
    }

    public func bytes(of completion: StreamCompletion) -> UnsafeRawBufferPointer {
        // Sound: the kernel wrote `result` bytes into this buffer, which stays
        // ours (out of the ring) until `release`.
        UnsafeRawBufferPointer(start: buffers!.address(completion.buffer), count: Int(completion.result))
    }

    public func release(_ completion: StreamCompletion) {
        guard completion.hasBuffer, buffers != nil else { return }
        buffers!.giveBack(completion.buffer)
    }

    /// Receive buffers provided to the kernel (256 at start, doubling each
    /// time receives run out, up to 8,192, and back to 256 once the runtime
    /// is quiet); 0 in poll mode.
    public var providedBufferCount: Int { Int(buffers?.provided ?? 0) }

    public var freeBufferCount: Int { buffers?.available ?? 0 }

    public func takeCompletions(into batch: inout [StreamCompletion]) {
        batch.removeAll(keepingCapacity: true)
        swap(&batch, &completions)
    }

    // MARK: Completions

    /// A receive's completion: for the stream when its descriptor is still
    /// the one that asked, otherwise its buffer goes straight back.
    func received(_ cqe: io_uring_cqe) {
        let index = Int(cqe.user_data & 0xFFFF_FFFF)
        let epoch = (cqe.user_data >> 32) & UringPoller.generationMask
        let hasBuffer = cqe.flags & UInt32(IORING_CQE_F_BUFFER) != 0
        let bid = UInt16(truncatingIfNeeded: cqe.flags >> 16)
        let continues = cqe.flags & UInt32(IORING_CQE_F_MORE) != 0
        if hasBuffer { buffers!.take(bid) }
        guard index < table.count, table[index].registered, table[index].epoch & UringPoller.generationMask == epoch else {
            if hasBuffer { buffers!.giveBack(bid) }
            return
        }
        if !continues { table[index].receiving = false }
        if cqe.res == -ENOBUFS { buffers!.grow(on: ring) }  // this runtime needs more than it has provided
        completions.append(StreamCompletion(token: Token(table[index].token), kind: .received, result: cqe.res,
                                            buffer: bid, hasBuffer: hasBuffer, continues: continues))
    }

    /// A multishot accept's completion: for the listener when it is still the
    /// one that asked; a connection accepted for a listener since closed is
    /// closed at once (nobody would own it).
    func acceptedConnection(_ cqe: io_uring_cqe) {
        let index = Int(cqe.user_data & 0xFFFF_FFFF)
        let epoch = (cqe.user_data >> 32) & UringPoller.generationMask
        let continues = cqe.flags & UInt32(IORING_CQE_F_MORE) != 0
        guard index < table.count, table[index].registered, table[index].epoch & UringPoller.generationMask == epoch else {
            if cqe.res >= 0 { Glibc.close(cqe.res) }
            return
        }
        if !continues { table[index].receiving = false }
        completions.append(StreamCompletion(token: Token(table[index].token), kind: .accepted, result: cqe.res, continues: continues))
    }

    /// A send's completion: the slot (and the stream it kept alive) is free;
    /// the stream hears the result if its descriptor is still the one that sent.
    func sent(_ cqe: io_uring_cqe) {
        let slot = Int(cqe.user_data & 0xFFFF_FFFF)
        let index = Int(sends.slots[slot].index)
        let epoch = sends.slots[slot].epoch
        sends.slots[slot].owner = nil
        sends.free.append(Int32(slot))
        guard index < table.count, table[index].registered, table[index].epoch == epoch,
              table[index].sendSlot == Int32(slot) else { return }
        table[index].sendSlot = -1
        completions.append(StreamCompletion(token: Token(table[index].token), kind: .sent, result: cqe.res))
    }

    /// Deregistration of a streaming descriptor: its receive and send are
    /// cancelled by tag, not by descriptor, so the cancel is right even
    /// though the runtime closes the descriptor before the ring sees it
    /// (the requests hold the socket open until then). Submitted with the
    /// next wait.
    func cancelStreamRequests(_ index: Int) {
        if table[index].receiving {
            let kind = table[index].accepts ? UringPoller.kindAccept : UringPoller.kindReceive
            cancel(UringPoller.tag(index, table[index].epoch, kind: kind))
            table[index].receiving = false
        }
        if table[index].sendSlot >= 0 {
            cancel(UringPoller.kindSend | UInt64(UInt32(table[index].sendSlot)))
            table[index].sendSlot = -1
        }
        table[index].streaming = false
    }

    private func cancel(_ userData: UInt64) {
        let sqe = nextSQE()
        io_uring_prep_cancel64(sqe, userData, 0)
        io_uring_sqe_set_data64(sqe, UringPoller.kindControl)
    }
}
#endif
