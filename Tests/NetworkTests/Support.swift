// Shared helpers of the network tests.
import Reactor
import Testing

extension Backend: CustomTestStringConvertible {
    public var testDescription: String { rawValue }
}
