/// The OMX release this build is. Nodes compare it: a node with another version is a mismatch.
public let omxVersion = "0.1.0"
