import Foundation

/// Draws the echo ping-pong rows as an SVG: throughput (left) and p99
/// latency (right) against connection count, one line per server, both
/// axes logarithmic where the numbers span decades. Plain SVG: any browser
/// or GitHub shows it, and no plotting library is needed.
enum Chart {
    static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]

    static func echoSVG(rows: [BenchRow], title: String) -> String {
        let echo = rows.filter { $0.scenario == "echo" && $0.messageBytes == 64 }
        let servers = echo.map(\.server).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let width = 960.0, height = 420.0
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(width / 2)" y="20" text-anchor="middle" font-size="15">\(escape(title))</text>

        """
        svg += panel(echo, servers: servers, x: 60, y: 50, width: 380, height: 300, label: "round trips per second",
                     logY: false) { $0.throughput }
        svg += panel(echo, servers: servers, x: 540, y: 50, width: 380, height: 300, label: "p99 latency, µs (log)",
                     logY: true) { $0.p99Microseconds }
        // Legend.
        for (index, server) in servers.enumerated() {
            let x = 60.0 + Double(index) * 100  // room for nine servers
            svg += "<rect x=\"\(x)\" y=\"\(height - 28)\" width=\"14\" height=\"4\" fill=\"\(palette[index % palette.count])\"/>"
            svg += "<text x=\"\(x + 20)\" y=\"\(height - 22)\">\(escape(server))</text>\n"
        }
        return svg + "</svg>\n"
    }

    private static func panel(_ rows: [BenchRow], servers: [String], x: Double, y: Double, width: Double, height: Double,
                              label: String, logY: Bool, value: (BenchRow) -> Double?) -> String {
        let points = rows.compactMap { row in value(row).flatMap { $0 > 0 ? (row, $0) : nil } }
        guard !points.isEmpty else { return "" }
        let connections = Set(points.map { $0.0.connections }).sorted()
        let xs = connections.map { log10(Double(max($0, 1))) }
        let (xMin, xMax) = (xs.min()!, max(xs.max()!, xs.min()! + 1))
        let values = points.map { logY ? log10($0.1) : $0.1 }
        var yMin = logY ? floor(values.min()!) : 0
        var yMax = logY ? ceil(values.max()!) : values.max()! * 1.1
        if yMax <= yMin { yMax = yMin + 1 }
        if !logY { yMin = 0 }
        func px(_ c: Int) -> Double { x + (log10(Double(max(c, 1))) - xMin) / (xMax - xMin) * width }
        func py(_ v: Double) -> Double { y + height - ((logY ? log10(v) : v) - yMin) / (yMax - yMin) * height }

        var svg = "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(width)\" height=\"\(height)\" fill=\"none\" stroke=\"#999\"/>\n"
        svg += "<text x=\"\(x + width / 2)\" y=\"\(y - 8)\" text-anchor=\"middle\">\(escape(label))</text>\n"
        svg += "<text x=\"\(x + width / 2)\" y=\"\(y + height + 32)\" text-anchor=\"middle\">connections × 64 B (log)</text>\n"
        for c in connections {
            svg += "<text x=\"\(px(c))\" y=\"\(y + height + 15)\" text-anchor=\"middle\">\(Format.number(Double(c)))</text>\n"
        }
        // Five horizontal grid lines with their values.
        for step in 0...4 {
            let v = yMin + (yMax - yMin) * Double(step) / 4
            let shown = logY ? pow(10, v) : v
            let yy = y + height - Double(step) / 4 * height
            svg += "<line x1=\"\(x)\" y1=\"\(yy)\" x2=\"\(x + width)\" y2=\"\(yy)\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(x - 4)\" y=\"\(yy + 4)\" text-anchor=\"end\" font-size=\"10\">\(compact(shown))</text>\n"
        }
        for (index, server) in servers.enumerated() {
            let line = points.filter { $0.0.server == server }.sorted { $0.0.connections < $1.0.connections }
            guard !line.isEmpty else { continue }
            let color = palette[index % palette.count]
            let path = line.map { "\(px($0.0.connections)),\(py($0.1))" }.joined(separator: " ")
            svg += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            for (row, v) in line {
                svg += "<circle cx=\"\(px(row.connections))\" cy=\"\(py(v))\" r=\"3\" fill=\"\(color)\"><title>\(escape(server)) \(row.connections): \(compact(v))</title></circle>\n"
            }
        }
        return svg
    }

    private static func compact(_ v: Double) -> String {
        if v >= 1e6 { return String(format: "%.1fM", v / 1e6) }
        if v >= 1e3 { return String(format: "%.0fk", v / 1e3) }
        return String(format: "%.0f", v)
    }

    private static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
    }
}
