// reactor-fuzz TARGET [ARGUMENTS...]
//
// Built normally, it replays inputs through a target: the files and folders
// given, or the target's committed seeds (Fuzz/Corpus/TARGET, from the
// package's folder). Built by scripts/fuzz.sh with -sanitize=fuzzer,address
// and -D FUZZING, it is libFuzzer: the arguments after TARGET are libFuzzer's
// (corpus folders, -max_total_time=20, a crash file to reproduce, ...).
//
// SwiftPM links an executable's `main` to this module's entry point, so
// libFuzzer's own `main` is not used: the entry point below hands the
// arguments to libFuzzer's driver, LLVMFuzzerRunDriver, instead.
import ReactorCore
import ReactorFuzzTargets

#if canImport(Glibc)
import Glibc
#endif

/// A line on standard error, unbuffered (it must be out before an abort).
func printError(_ message: String) {
    var line = message + "\n"
    _ = line.withUTF8 { write(2, $0.baseAddress, $0.count) }
}

@main
struct ReactorFuzz {
    /// The target named by the first argument, chosen once for the whole process.
    static let target: FuzzTarget? = CommandLine.arguments.count > 1 ? FuzzTarget.named(CommandLine.arguments[1]) : nil

    static func main() {
        guard let target else {
            let names = FuzzTarget.all.map { "  \($0.name): \($0.summary)" }.joined(separator: "\n")
            printError("usage: reactor-fuzz TARGET [INPUTS or libFuzzer ARGUMENTS...]\ntargets:\n\(names)")
            exit(2)
        }
        #if FUZZING
        exit(runLibFuzzer())
        #else
        exit(replay(target, Array(CommandLine.arguments.dropFirst(2))))
        #endif
    }

    /// Runs one input; a failed check aborts, which libFuzzer reports as a crash and saves the input of.
    static func runOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
        guard let target else { return 0 }
        do {
            try target.run(UnsafeRawBufferPointer(start: data, count: size))
        } catch {
            printError("\(target.name): check failed: \(error)")
            abort()
        }
        return 0
    }

    #if !FUZZING
    /// Replays every file given (folders: every file in them); the exit status.
    static func replay(_ target: FuzzTarget, _ paths: [String]) -> Int32 {
        let inputs = paths.isEmpty ? ["Fuzz/Corpus/\(target.name)"] : paths
        var count = 0
        for path in inputs {
            for file in files(at: path) {
                guard let bytes = readFile(file) else {
                    printError("reactor-fuzz: cannot read \(file)")
                    return 1
                }
                do {
                    try target.run(bytes)
                } catch {
                    printError("\(target.name): \(file): check failed: \(error)")
                    return 1
                }
                count += 1
            }
        }
        print("\(target.name): \(count) inputs replayed, every check held")
        return 0
    }

    /// The regular files at `path`: itself, or those directly inside it.
    static func files(at path: String) -> [String] {
        guard case .success(let entries) = Syscall.directoryEntries(path) else { return [path] }
        let names = entries.filter { !$0.hasPrefix(".") }.map { path + "/" + $0 }
        return names.sorted()
    }

    static func readFile(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n == 0 { return ferror(file) == 0 ? bytes : nil }
            bytes += chunk[..<n]
        }
    }
    #endif
}

#if FUZZING
/// libFuzzer's driver, in the fuzzer runtime that -sanitize=fuzzer links.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

extension ReactorFuzz {
    /// Hands libFuzzer the arguments after the target's name.
    static func runLibFuzzer() -> Int32 {
        let arguments = [CommandLine.arguments[0]] + CommandLine.arguments.dropFirst(2)
        // libFuzzer keeps argv for the whole run (and may re-exec with it), so these copies are never freed.
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var argc = Int32(arguments.count)
        return argv.withUnsafeMutableBufferPointer { buffer in
            var base: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
            return LLVMFuzzerRunDriver(&argc, &base) { data, size in ReactorFuzz.runOne(data, size) }
        }
    }
}

/// The symbol the fuzzer runtime's own `main` refers to; linking needs it, the driver above is what calls it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    ReactorFuzz.runOne(data, size)
}
#endif
