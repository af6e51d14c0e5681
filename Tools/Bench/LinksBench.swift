// The `links` scenario: the URL shortener (Examples/Links) on each backend
// in front of a real redis-server, the model microservice under load. Each
// run starts a fresh redis-server (no persistence) and a fresh `links` with
// one runtime, creates one link with a POST, then `wrk -c100` asks for that
// code (302 Found) for the plan's window. Every GET costs `links` an HTTP
// request and three redis commands (GET, then INCR of two hit counters).
//
// Where redis-server runs: on the load CPU (`--redis-cpu`, default the load
// CPU), beside wrk, not beside `links`. The server CPU then holds only the
// process measured, as in every other scenario, and `links`' CPU time is its
// own; redis-server's CPU time is read separately (schedstat, as the
// server's) and reported beside it. Sharing CPU 0 would make every request a
// context switch between the two processes there and bound the throughput by
// their sum; sharing CPU 1 takes some CPU from wrk instead, so the row's note
// gives redis-server's CPU time and wrk's share of CPU 1 is what is left.
import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension Bench {
    mutating func links() {
        let label = "links"
        let redis: String
        do {
            _ = try tool("wrk")
            redis = try tool("redis-server")
        } catch {
            skip(label, "\(error)")
            return
        }
        var samples: [String: [BenchRow]] = [:]
        var perBothCPUs: [String: [Double]] = [:]  // requests per links + redis CPU-second, each run
        for run in 1...plan.runs {
            for backend in plan.backends {
                let label = "links GET /CODE (302), wrk -c100, \(backend), run \(run)/\(plan.runs)"
                do {
                    let port = try freePort()
                    let store = try ServerProcess(name: "redis-server", executable: redis,
                                                  arguments: ["--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--port", "\(port)"],
                                                  cpu: plan.redisCPU, port: port)
                    defer { store.stop() }
                    let server = try ServerProcess(name: "links-\(backend)", executable: "\(plan.binPath)/links",
                                                   arguments: ["--backend", backend.rawValue, "--strict-backend", "--port", "0", "--threads", "1",
                                                               "--redis", "127.0.0.1:\(port)"],
                                                   cpu: plan.serverCPU)
                    defer { server.stop() }
                    let code = try createLink(port: server.port, url: "https://example.com/benchmarked")
                    let linksBefore = server.cpuSeconds(), redisBefore = store.cpuSeconds()
                    let result = try runWrk(port: server.port, connections: 100, seconds: max(1, Int(plan.seconds.rounded())), cpu: plan.loadCPU,
                                            path: "/\(code)")
                    let cpu = server.cpuSeconds() - linksBefore
                    let redisCPU = store.cpuSeconds() - redisBefore
                    let row = BenchRow(scenario: "links", server: backend.rawValue, connections: 100, messageBytes: 0,
                                       throughput: result.throughput, perServerCPUSecond: result.requests / cpu,
                                       p50Microseconds: result.p50Microseconds, p99Microseconds: result.p99Microseconds,
                                       serverCPUSeconds: cpu, redisCPUSeconds: redisCPU, peakRSSKiB: server.memoryKiB().peak)
                    progress("\(label): \(Format.number(row.throughput)) req/s, \(Format.number(row.perServerCPUSecond)) per links CPU-s; "
                             + "links \(Format.number(cpu, digits: 2)) CPU-s, redis-server \(Format.number(redisCPU, digits: 2)) CPU-s")
                    samples[backend.rawValue, default: []].append(row)
                    perBothCPUs[backend.rawValue, default: []].append(result.requests / (cpu + redisCPU))
                } catch {
                    fail(label, error)
                }
            }
        }
        for backend in plan.backends {
            guard var row = Self.median(samples[backend.rawValue] ?? []) else { continue }
            let perBoth = perBothCPUs[backend.rawValue]?.nonEmptyMedian
            row.note = ["redis-server \(Format.number(row.redisCPUSeconds, digits: 2)) CPU-s on CPU \(plan.redisCPU)"
                        + (perBoth.map { ", \(Format.number($0)) per links + redis CPU-s" } ?? ""),
                        row.note].filter { !$0.isEmpty }.joined(separator: "; ")
            rows.append(row)
        }
    }

    /// POSTs `url` to `/links` and returns the code `links` made for it,
    /// after checking that `GET /CODE` redirects there (302 with that
    /// `Location`), so the load asks for a link that exists.
    func createLink(port: UInt16, url: String) throws -> String {
        let created = try blockingHTTP(port: port, "POST /links HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(url.utf8.count)\r\nConnection: close\r\n\r\n\(url)")
        guard created.hasPrefix("HTTP/1.1 201"), let range = created.range(of: "\"code\":\""),
              let end = created[range.upperBound...].firstIndex(of: "\"") else {
            throw BenchError("links: POST /links answered \(created.prefix(300).debugDescription)")
        }
        let code = String(created[range.upperBound..<end])
        let redirect = try blockingHTTP(port: port, "GET /\(code) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        guard redirect.hasPrefix("HTTP/1.1 302"), redirect.lowercased().contains("location: \(url)") else {
            throw BenchError("links: GET /\(code) answered \(redirect.prefix(300).debugDescription)")
        }
        return code
    }

    /// Sends `request` on a new connection and reads the answer until the server closes it (within 10 s).
    private func blockingHTTP(port: UInt16, _ request: String) throws -> String {
        let fd = try blockingConnect(port: port)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw BenchError("links: send: \(String(cString: strerror(errno)))") }
            sent += n
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { answer += buffer[..<n]; continue }
            if n == 0 { break }
            throw BenchError("links: recv: \(String(cString: strerror(errno))) after \(answer.count) bytes")
        }
        return String(decoding: answer, as: UTF8.self)
    }
}
