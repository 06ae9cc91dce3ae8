/// libuv's handle types share a common prefix (`uv_handle_t`, then `uv_stream_t`), so one
/// handle pointer is legitimately viewed as each of them.
extension UnsafeMutablePointer {
    /// The same handle memory viewed as another libuv handle type.
    @inline(__always)
    func reinterpreted<T>(as type: T.Type) -> UnsafeMutablePointer<T> {
        UnsafeMutableRawPointer(self).assumingMemoryBound(to: T.self)
    }
}
