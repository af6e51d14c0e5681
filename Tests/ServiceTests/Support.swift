// Shared helpers of the service tests.
import Reactor
import Testing

extension Backend: CustomTestStringConvertible {
    public var testDescription: String { rawValue }
}
